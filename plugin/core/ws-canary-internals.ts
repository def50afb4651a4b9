import { randomBytes } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { Duplex } from 'node:stream'
import type { WebSocket, WebSocketServer } from 'ws'
import { DependencyChangedError } from './errors'
import { websocketWsVersion } from './versions'
import {
  checkWebsocketServer, corkSocket, frameString, replaceHandleProtocols, setMaxPayload, uncorkSocket, writeFramed, writeText
} from './ws-internals'

/**
 * The registration canary of core/ws-internals.ts's reach-ins into ws (its header states the policy): real
 * upgrades, in memory, on a server of the very class `app.websocketServer` is (so the ws that
 * @fastify/websocket loads, whichever copy that is), with the reach-ins applied as the plugin applies
 * them. Each check fails registration with FST_CHANX_DEPENDENCY_CHANGED naming ws and its version.
 */

/** The in-memory stream a probe socket runs on: what the server writes is kept; `push` plays the client. */
class ProbeStream extends Duplex {
  readonly written: Buffer[] = []
  override _read (): void {}
  override _write (chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.written.push(chunk)
    callback()
  }
}

const CANARY_TIMEOUT = 2000

function changed (what: string): Error {
  return new DependencyChangedError('ws', websocketWsVersion(), what)
}

/** Upgrades an in-memory request on `wss`, offering `protocols`: the server's socket and its stream. */
function upgrade (wss: WebSocketServer, protocols: string): Promise<{ socket: WebSocket, stream: ProbeStream }> {
  const stream = new ProbeStream()
  const request = {
    method: 'GET',
    url: '/',
    headers: {
      host: 'canary',
      connection: 'Upgrade',
      upgrade: 'websocket',
      'sec-websocket-version': '13',
      'sec-websocket-key': randomBytes(16).toString('base64'),
      'sec-websocket-protocol': protocols
    }
  } as unknown as IncomingMessage
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(changed('an in-memory upgrade did not complete')), CANARY_TIMEOUT)
    wss.handleUpgrade(request, stream, Buffer.alloc(0), (socket) => {
      clearTimeout(timer)
      resolve({ socket, stream })
    })
  })
}

/** One masked client frame (`opcode`, `fin`) carrying `payload`, as a browser would send it. */
function clientFrame (opcode: number, fin: boolean, payload: Buffer): Buffer {
  if (payload.length > 125) throw new RangeError('a canary frame is short')
  const mask = randomBytes(4)
  const masked = Buffer.from(payload)
  for (let i = 0; i < masked.length; i++) masked[i] ^= mask[i & 3]
  return Buffer.concat([Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | payload.length]), mask, masked])
}

/** The `code` of the error ws emits on `socket` once the client's bytes are read, or a timeout. */
function receiverError (socket: WebSocket, stream: ProbeStream, frames: Buffer[]): Promise<string> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('none'), CANARY_TIMEOUT)
    socket.once('error', (err: Error & { code?: string }) => {
      clearTimeout(timer)
      resolve(err.code ?? err.message)
    })
    for (const frame of frames) stream.push(frame)
  })
}

/**
 * `maxPayload`, `maxFragments` and `handleProtocols` changed on the options after the server was made (as the
 * plugin must: @fastify/websocket made it) are the ones an upgrade then uses.
 */
async function checkOptionsReadPerUpgrade (Server: typeof WebSocketServer): Promise<void> {
  const wss = new Server({ noServer: true, clientTracking: false })
  setMaxPayload(wss, 16)   // and maxFragments 16
  replaceHandleProtocols(wss, (protocols) => protocols.has('chanx') ? 'chanx' : false)

  const first = await upgrade(wss, 'bearer.canary, chanx')
  const response = Buffer.concat(first.stream.written).toString('latin1')
  if (!/\r\nSec-WebSocket-Protocol: chanx\r\n/i.test(response) || /bearer/i.test(response)) {
    first.socket.terminate()
    throw changed('handleProtocols set on the server\'s options after construction was not used to select the subprotocol ' +
      '(a bearer.<jwt> credential would be echoed)')
  }
  const fragments = [clientFrame(1, false, Buffer.alloc(0))]
  for (let i = 0; i < 16; i++) fragments.push(clientFrame(0, false, Buffer.alloc(0)))
  const tooMany = await receiverError(first.socket, first.stream, fragments)
  first.socket.terminate()
  if (tooMany !== 'WS_ERR_TOO_MANY_BUFFERED_PARTS') {
    throw changed(`maxFragments set on the server's options after construction was not enforced (got ${tooMany})`)
  }

  const second = await upgrade(wss, 'chanx')
  const tooLong = await receiverError(second.socket, second.stream, [clientFrame(1, true, Buffer.alloc(17, 0x61))])
  second.socket.terminate()
  if (tooLong !== 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
    throw changed(`maxPayload set on the server's options after construction was not enforced (got ${tooLong}): ` +
      'the 64 KiB frame cap would not hold')
  }
}

/** The text frames in `bytes` (after the 101 response), in order: their payloads, `+` before a continuation. */
function framesOn (bytes: Buffer): string[] {
  let at = bytes.indexOf('\r\n\r\n') + 4
  const texts: string[] = []
  while (at < bytes.length) {
    const opcode = bytes[at] & 0x0f
    const length = bytes[at + 1] & 0x7f   // the canary's frames are short
    texts.push((opcode === 0 ? '+' : '') + bytes.toString('utf8', at + 2, at + 2 + length))
    at += 2 + length
  }
  return texts
}

/**
 * Frames written straight to the stream keep their place among ws's own sends, and the direct path declines
 * exactly where ws would queue or is inside a fragmented message.
 */
async function checkDirectWriteOrder (Server: typeof WebSocketServer): Promise<void> {
  const wss = new Server({ noServer: true, clientTracking: false, perMessageDeflate: false })
  const { socket, stream } = await upgrade(wss, 'chanx')
  const taken: boolean[] = []
  taken.push(writeText(socket, 'a'))
  socket.send('b')
  taken.push(writeFramed(socket, frameString('c')))
  socket.send('d', { fin: false })
  taken.push(writeText(socket, 'x'))          // inside a fragmented message: declined
  socket.send('e', { fin: true })
  socket.send(new Blob(['f']))                // ws reads a Blob asynchronously and queues behind it
  taken.push(writeText(socket, 'g'))          // declined while queued
  if (!taken[3]) socket.send('g')
  await new Promise<void>((resolve) => socket.send('h', () => resolve()))
  corkSocket(socket)
  taken.push(writeText(socket, 'i'))
  socket.send('j')
  uncorkSocket(socket)
  await new Promise((resolve) => setImmediate(resolve))
  const order = framesOn(Buffer.concat(stream.written)).join(' ')
  socket.terminate()
  const expected = 'a b c d +e f g h i j'
  if (taken.join() !== 'true,true,false,false,true' || order !== expected) {
    throw changed('frames written straight to a socket\'s stream would not keep their order among ws\'s own sends ' +
      `(direct writes taken: ${taken.join()}; on the wire: ${order}; expected ${expected})`)
  }
}

/** ws server classes (one per copy of ws in the process) whose behaviour the checks below have proven. */
const proven = new WeakSet<typeof WebSocketServer>()

/**
 * Runs every check; rejects with FST_CHANX_DEPENDENCY_CHANGED at the first that fails. The behavioural
 * checks (a few ms) run once per ws server class, which is once per copy of ws in the process: a class
 * behaves the same for every app, and an app's registration stays as fast as it was.
 */
export async function checkWs (wss: WebSocketServer): Promise<void> {
  checkWebsocketServer(wss)
  const Server = wss.constructor as typeof WebSocketServer
  if (proven.has(Server)) return
  await checkOptionsReadPerUpgrade(Server)
  await checkDirectWriteOrder(Server)
  proven.add(Server)
}
