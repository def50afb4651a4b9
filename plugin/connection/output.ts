import type { FastifyBaseLogger } from 'fastify'
import { WebSocket } from 'ws'
import type { SharedFrame } from '../core/frame'
import { writeFramed, writeText } from '../core/ws-internals'
import { CLOSE_SLOW_READER } from './guard'

/**
 * Writing to an open socket, bounded by `limit` (maxBufferedBytes; 0: no bound): a socket whose unsent
 * output passed it is a slow reader and is cut.
 */

/**
 * A close frame cannot get past a megabyte of unread output, and ws would wait 30 s for the peer to
 * answer it: the close is sent (a peer that catches up reads it), and the connection cut at once.
 */
export function cutSlowReader (socket: WebSocket, log: FastifyBaseLogger): void {
  log.warn('fastify-chanx: a slow reader passed maxBufferedBytes; closing the socket')
  socket.close(CLOSE_SLOW_READER, 'Slow reader')
  socket.terminate()
}

/** One text frame, in one buffer where ws would write it at once (core/ws-internals.ts), else through ws. */
export function writeToSocket (socket: WebSocket, text: string, limit: number, log: FastifyBaseLogger): void {
  if (socket.readyState !== WebSocket.OPEN) return
  if (limit > 0 && socket.bufferedAmount > limit) {
    cutSlowReader(socket, log)
    return
  }
  if (!writeText(socket, text)) socket.send(text)
}

/**
 * A text that goes to many sockets: the same bytes, framed once, where ws would write them unchanged
 * (core/ws-internals.ts), else `frame.text` through ws. The socket is OPEN.
 */
export function writeSharedToSocket (socket: WebSocket, frame: SharedFrame, limit: number, log: FastifyBaseLogger): void {
  if (limit > 0 && socket.bufferedAmount > limit) {
    cutSlowReader(socket, log)
    return
  }
  if (writeFramed(socket, frame.framed)) return
  socket.send(frame.text)
  if (frame.next !== null) socket.send(frame.next.text)
}
