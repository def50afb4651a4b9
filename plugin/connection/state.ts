import type { EventEmitter } from 'node:events'

/**
 * What a connection keeps besides its hot fields. An idle socket is the common case, so what only the
 * handshake needs lives in an `Opening` dropped at open, what few sockets need in a `Seldom` made on first
 * use, flags share one small integer, and times are milliseconds since this module loaded, which V8 stores
 * unboxed, where epoch milliseconds would cost a heap number each.
 */

/** Times on a connection count from here: small integers, unboxed in the object (epoch ms are not). */
const EPOCH = Date.now()

/**
 * `epochMs` as ms since EPOCH, as a small integer where it is one: V8 keeps the result of a subtraction
 * boxed (a heap number per field and object) unless it is turned back into an integer. Exact either way.
 */
export function sinceEpoch (epochMs: number): number {
  const ms = epochMs - EPOCH
  const small = ms | 0
  return small === ms ? small : ms
}

/** A connection's flags, in one small integer. */
export const RELEASED = 1
export const AWAITING_PONG = 2
export const REAUTHENTICATING = 4
export const HAS_EXPIRY = 8
export const KILL_PENDING = 16

/** What few connections need: made when one of these is first set (connection limits, a close, re-authentication, history, the id). */
export class Seldom {
  userSlot: string | null = null
  ipSlot: string | null = null
  /** After a server-side close, when a close the peer did not complete is cut (since EPOCH, with KILL_PENDING). */
  killAt = 0
  nextReauthentication = 0
  recoveryToken: string | null = null
  id = ''
}

/** What a connection holds from admission until its socket opens; dropped at open. */
export class Opening {
  /** The authentication message to send when the socket opens; `null` when messages are off. */
  message: string | null = null
  /** Output produced before the socket opened, and its size. */
  pending: string[] | null = null
  pendingBytes = 0
  closeCode = 0
  closeText = ''
  /** What reports the upgrade's transport closing before the socket opens, and the listener there. */
  watched: EventEmitter | null = null
  onWatchedClose: (() => void) | null = null
}

/** Stops watching the upgrade's transport for a close before the socket opens. */
export function unwatch (opening: Opening): void {
  const watched = opening.watched
  if (watched === null) return
  watched.removeListener('close', opening.onWatchedClose!)
  opening.watched = null
  opening.onWatchedClose = null
}
