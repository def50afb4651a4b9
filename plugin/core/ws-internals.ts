import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocket, type WebSocketServer } from 'ws'

/**
 * Every place fastify-chanx reaches past the public surface of @fastify/websocket (v11) and ws (v8), in
 * one module, each checked against the installed versions:
 *
 * - A refused handshake still completes the WebSocket upgrade (DESIGN: a browser can read a close code but
 *   not the HTTP status of a refused upgrade), yet must never reach the route's handler. @fastify/websocket
 *   only upgrades from inside the route handler, and offers no public way to upgrade without it, so the
 *   refusal upgrades the socket itself, from the stream and head that @fastify/websocket stored on the raw
 *   request under its private symbols (`ws-socket`, `ws-head`). They are found by description once.
 * - @fastify/websocket keeps the upgrade's head on the raw request, which lives as long as the socket; the
 *   gate below drops it once ws has it (`releaseHead`).
 * - ws tracks each client with a `'close'` listener of its own per socket; a connection takes its place with one
 *   shared function and does its work (`untrackClient`) where the server has the fields that work uses.
 * - ws reads `maxPayload` and `handleProtocols` from `wss.options` on every upgrade; @fastify/websocket
 *   builds the server before fastify-chanx is registered, so both are changed there, after construction.
 * - A broadcast is framed once (`frameString`, checked at registration against ws's exported
 *   `Sender.frame`) and the same bytes written to every member's stream, where ws itself would encode and
 *   frame the text again per socket. That is only right where ws would write the frame at once and
 *   unchanged: no permessage-deflate, nothing queued in ws's sender, not inside a fragmented message.
 *   `writeFramed` checks exactly that, per socket, on ws's private fields (`_extensions`, `_sender`,
 *   `_socket`), and answers `false` (the caller sends normally) when they are not there or not idle. Every
 *   other frame under 4 KiB the plugin sends (`writeText`) is framed the same way, into one pooled buffer,
 *   under the same checks. A reply and its `complete` are written under one cork of that stream.
 */
let socketSymbol: symbol | undefined
let headSymbol: symbol | undefined

function findSymbols (raw: IncomingMessage): void {
  for (const symbol of Object.getOwnPropertySymbols(raw)) {
    if (symbol.description === 'ws-socket') socketSymbol = symbol
    else if (symbol.description === 'ws-head') headSymbol = symbol
  }
}

const EMPTY_HEAD = Buffer.alloc(0)

/** The options object ws reads on each upgrade; only the fields fastify-chanx changes. */
interface ServerOptions {
  maxPayload?: number
  handleProtocols?: ((protocols: Set<string>, request: IncomingMessage) => string | false) | null
}

/**
 * Checks, at registration, that the installed ws server still has the shape this module relies on: a
 * `handleUpgrade` method and a writable `options` object. A changed version fails here, with this
 * sentence, instead of misbehaving on the first handshake.
 */
export function checkWebsocketServer (wss: WebSocketServer): void {
  const options = (wss as { options?: unknown }).options
  const descriptor = Object.getOwnPropertyDescriptor(wss, 'options')
  if (typeof wss.handleUpgrade !== 'function' || options === null || typeof options !== 'object' ||
    descriptor === undefined || Object.isFrozen(options) || !Object.isExtensible(options)) {
    throw new Error('fastify-chanx: app.websocketServer does not have the shape of a ws 8 WebSocketServer ' +
      '(a handleUpgrade method and a writable options object); is a supported @fastify/websocket (11.x) installed?')
  }
  if (!checkFraming()) {
    throw new Error('fastify-chanx: the installed ws does not export Sender.frame building an unmasked text frame ' +
      'as ws 8 does; is a supported ws (8.x) installed?')
  }
}

interface SenderShape {
  _state?: unknown
  _queue?: { length: number }
  _firstFragment?: unknown
}

interface SocketShape {
  _extensions?: Record<string, unknown>
  _sender?: SenderShape | null
  _socket?: Duplex | null
}

type FrameFunction = (data: Buffer, options: { fin: boolean, opcode: number, mask: boolean, readOnly: boolean, rsv1: boolean }) => Buffer[]

const frameFunction = (WebSocket as unknown as { Sender?: { frame?: FrameFunction } }).Sender?.frame

/** ws's Sender state in which a send goes straight to the stream (DEFAULT in lib/sender.js). */
const SENDER_IDLE = 0
const DEFLATE = 'permessage-deflate'

/**
 * One unmasked, final text frame carrying `payload`, as one buffer: the header ws's `Sender.frame` builds,
 * then the payload. Exactly the bytes `socket.send(text)` writes for an uncompressed server socket.
 */
export function frameText (payload: Buffer): Buffer {
  const parts = frameFunction!(payload, { fin: true, opcode: 1, mask: false, readOnly: false, rsv1: false })
  return parts.length === 1 ? parts[0] : Buffer.concat(parts, parts[0].length + payload.length)
}

/**
 * The stream ws would write a frame to at once and unchanged, or null where it would not: compression
 * negotiated, a send queued behind a compression or a Blob, a fragmented message under way, or a ws whose
 * fields differ. The caller has checked that the socket is OPEN.
 */
function idleStream (socket: WebSocket): Duplex | null {
  const shape = socket as unknown as SocketShape
  const sender = shape._sender
  const stream = shape._socket
  const extensions = shape._extensions
  if (sender == null || stream == null || extensions === undefined || extensions[DEFLATE] !== undefined ||
    sender._state !== SENDER_IDLE || sender._queue === undefined || sender._queue.length !== 0 ||
    sender._firstFragment !== true) return null
  return stream
}

/**
 * Writes a whole frame (`frameString`) straight to the socket's stream, where ws would write it unchanged
 * and at once (see `idleStream`); `false`, nothing written, where it would not.
 */
export function writeFramed (socket: WebSocket, frame: Buffer): boolean {
  const stream = idleStream(socket)
  if (stream === null) return false
  stream.write(frame)
  return true
}

/**
 * Frames below this size come from Node's shared buffer pool (`Buffer.allocUnsafe`); a larger one would be
 * a new ArrayBuffer each, which the bench measured costing more than ws's own way (4 KB round trips:
 * 1.11x the hand-written pipeline, against 0.95x through ws).
 */
const POOLED_FRAME_BYTES = Buffer.poolSize >>> 1

/**
 * Sends `text` as one text frame in one buffer, header and UTF-8 payload together, where ws would write it
 * at once (see `idleStream`) and the frame fits a pooled buffer; `false`, nothing written, otherwise. ws's
 * own `send` corks the stream and writes the header and the string apart, which Node then joins in a
 * `writev`: for a short reply that costs more than the frame itself.
 */
export function writeText (socket: WebSocket, text: string): boolean {
  const length = Buffer.byteLength(text)
  if (length + 4 >= POOLED_FRAME_BYTES) return false
  const stream = idleStream(socket)
  if (stream === null) return false
  stream.write(frameString(text, length))
  return true
}

/** The unmasked final text frame carrying `text` (`length`: its UTF-8 bytes): the bytes `frameText(Buffer.from(text))` makes, in one allocation. */
export function frameString (text: string, length = Buffer.byteLength(text)): Buffer {
  const header = length < 126 ? 2 : length < 65536 ? 4 : 10
  const frame = Buffer.allocUnsafe(header + length)
  frame[0] = 0x81
  if (header === 2) {
    frame[1] = length
  } else if (header === 4) {
    frame[1] = 126
    frame.writeUInt16BE(length, 2)
  } else {
    frame[1] = 127
    frame.writeUInt32BE(Math.floor(length / 0x100000000), 2)
    frame.writeUInt32BE(length >>> 0, 6)
  }
  frame.write(text, header, length, 'utf8')
  return frame
}

interface TrackingServer {
  clients?: unknown
  _shouldEmitClose?: unknown
  _state?: unknown
}

/** ws's server state once closed (CLOSED in lib/websocket-server.js). */
const SERVER_CLOSED = 2

/**
 * `wss` when it tracks its clients with the fields `untrackClient` uses (a `clients` Set, a boolean
 * `_shouldEmitClose`, a numeric `_state`), else null: then ws's own per-socket listener is left in place.
 */
export function clientTrackingServer (wss: WebSocketServer): WebSocketServer | null {
  const server = wss as unknown as TrackingServer
  return server.clients instanceof Set && typeof server._shouldEmitClose === 'boolean' && typeof server._state === 'number'
    ? wss
    : null
}

/**
 * What ws's client-tracking `'close'` listener does (lib/websocket-server.js, `completeUpgrade`): forget the
 * socket, and once a closing server has no client left, emit its `'close'`. ws makes that listener a closure
 * per socket, which with its context stays as long as the socket does (about 100 bytes); a connection that
 * took its place calls this shared function instead. `wss` comes from `clientTrackingServer`.
 */
export function untrackClient (wss: WebSocketServer, socket: WebSocket): void {
  const server = wss as unknown as TrackingServer & { clients: Set<WebSocket> }
  server.clients.delete(socket)
  if (server._shouldEmitClose === true && server.clients.size === 0) process.nextTick(emitServerClose, wss)
}

/**
 * Removes ws's own client-tracking `'close'` listener from `socket` when it is the only one there, so that the
 * caller's shared listener takes its place and calls `untrackClient`; false, nothing removed, otherwise.
 */
export function dropTrackingListener (socket: WebSocket): boolean {
  if (socket.listenerCount('close') !== 1) return false
  socket.removeListener('close', socket.rawListeners('close')[0] as (...args: unknown[]) => void)
  return true
}

function emitServerClose (wss: WebSocketServer): void {
  (wss as unknown as TrackingServer)._state = SERVER_CLOSED
  wss.emit('close')
}

/**
 * Holds the socket's writes until `uncorkSocket`, so that frames sent in between (a reply and its
 * `complete`) leave in one system call; ws corks each frame the same way. Nothing when ws has no stream.
 */
export function corkSocket (socket: WebSocket): void {
  (socket as unknown as SocketShape)._socket?.cork()
}

export function uncorkSocket (socket: WebSocket): void {
  (socket as unknown as SocketShape)._socket?.uncork()
}

function checkFraming (): boolean {
  if (typeof frameFunction !== 'function') return false
  try {
    const frame = frameText(Buffer.from('{}'))
    return frame.length === 4 && frame[0] === 0x81 && frame[1] === 2 && frame[2] === 123 && frame[3] === 125 &&
      frame.equals(frameString('{}'))
  } catch {
    return false
  }
}

function serverOptions (wss: WebSocketServer): ServerOptions {
  return wss.options as ServerOptions
}

export function maxPayloadOf (wss: WebSocketServer): number | undefined {
  return serverOptions(wss).maxPayload
}

/**
 * Each fragment of a message costs ws a Buffer and its bookkeeping (about 100 bytes) however small it is:
 * 16,000 one-byte continuation frames (ws's default `maxFragments` is 16,384) made a server hold 1.7 MiB for
 * a 64 KiB cap. So a fragment counts as at least this many bytes against the frame cap.
 */
export const MIN_FRAGMENT_BYTES = 512

/** The fragment limit that goes with a frame cap: `maxPayload / MIN_FRAGMENT_BYTES`, at least 16. */
export function maxFragmentsFor (maxPayload: number): number {
  return Math.max(16, Math.ceil(maxPayload / MIN_FRAGMENT_BYTES))
}

/**
 * ws enforces the frame cap itself, with 1009, before it buffers a larger frame; and the fragment limit, with
 * 1008 `Too many message fragments`, before it buffers one fragment too many.
 */
export function setMaxPayload (wss: WebSocketServer, maxPayload: number): void {
  const options = serverOptions(wss) as ServerOptions & { maxFragments?: number }
  options.maxPayload = maxPayload
  options.maxFragments = maxFragmentsFor(maxPayload)
}

/** Replaces ws's subprotocol selection; returns the one configured before (the app's own, or none). */
export function replaceHandleProtocols (wss: WebSocketServer, select: NonNullable<ServerOptions['handleProtocols']>): ServerOptions['handleProtocols'] {
  const options = serverOptions(wss)
  const previous = options.handleProtocols
  options.handleProtocols = select
  return previous
}

/**
 * Puts a gate in front of this server's `handleUpgrade`, which @fastify/websocket calls from the route's
 * handler (and the refusal path calls too): an upgrade the gate refuses never becomes a socket; the gate
 * answers it on the raw stream itself. (ws's `verifyClient` would do the same but reads `req.socket`, which
 * `injectWS` requests do not have.)
 */
export function gateUpgrades (wss: WebSocketServer, admits: (req: IncomingMessage, stream: Duplex) => boolean): void {
  const handleUpgrade = wss.handleUpgrade
  wss.handleUpgrade = function gatedUpgrade (this: WebSocketServer, req, stream, head, callback) {
    if (admits(req, stream)) handleUpgrade.call(this, req, stream, head, callback)
    releaseHead(req)
  }
}

/**
 * Drops @fastify/websocket's reference to the upgrade's head once ws has been handed it (ws puts any bytes
 * back on the stream; an argument, not the request, carries them on). The head is a view of the buffer the
 * whole upgrade request was read into, and the request stays alive as long as its socket: without this,
 * every open socket would keep its request's bytes, cookies and tokens included.
 */
function releaseHead (req: IncomingMessage): void {
  if (headSymbol === undefined) findSymbols(req)
  if (headSymbol === undefined) return
  const carrier = req as unknown as Record<symbol, unknown>
  if (carrier[headSymbol] !== undefined) carrier[headSymbol] = EMPTY_HEAD
}

/**
 * The stream the upgrade will run on: @fastify/websocket's stored socket (a real TCP socket, or the
 * in-memory stream of `injectWS`), else `raw.socket`. `undefined` when there is none.
 */
export function upgradeStream (raw: IncomingMessage): Duplex | undefined {
  if (socketSymbol === undefined || headSymbol === undefined) findSymbols(raw)
  const carrier = raw as unknown as Record<symbol, unknown>
  const stream = (socketSymbol === undefined ? undefined : carrier[socketSymbol]) as Duplex | undefined
  return stream ?? raw.socket ?? undefined
}

/** Whether @fastify/websocket's private upgrade symbols are found on this upgrade request. */
export function carriesUpgradeSymbols (raw: IncomingMessage): boolean {
  findSymbols(raw)
  const carrier = raw as unknown as Record<symbol, unknown>
  return socketSymbol !== undefined && headSymbol !== undefined &&
    carrier[socketSymbol] !== undefined && Buffer.isBuffer(carrier[headSymbol])
}

export function upgradeSocket (wss: WebSocketServer, raw: IncomingMessage, onSocket: (socket: WebSocket) => void): void {
  const stream = upgradeStream(raw)
  const carrier = raw as unknown as Record<symbol, unknown>
  const head = (headSymbol === undefined ? undefined : carrier[headSymbol]) as Buffer | undefined ?? EMPTY_HEAD
  if (stream === undefined || stream === null) {
    throw new Error('fastify-chanx: the upgrade request carries no socket; is @fastify/websocket registered?')
  }
  wss.handleUpgrade(raw, stream, head, onSocket)
}
