import { OutgoingInvalidError } from '../core/errors'
import { withoutServerFields } from '../core/protocol-fields'
import { MAX_ID_LENGTH, type MessageRouter } from './compile'

/** What a handler's reply becomes on the wire: checked against `outgoing` when asked, serialized, tagged with the frame's `id`. */

function isRecordLike (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object'
}

function outgoingValid (router: MessageRouter, message: unknown): boolean {
  if (!isRecordLike(message)) return false
  const action = message[router.actionKey]
  const check = typeof action === 'string' ? router.outgoing!.get(action) : undefined
  return check !== undefined && check.Check(message.payload === undefined ? null : message.payload)
}

/**
 * Why a broadcast may not go out: FST_CHANX_OUTGOING_INVALID when the route validates what it sends and
 * `message` does not match its `outgoing` schemas, else null.
 */
export function broadcastRefusal (router: MessageRouter, message: unknown): Error | null {
  if (!router.validateOutgoing || outgoingValid(router, message)) return null
  const action = isRecordLike(message) ? message[router.actionKey] : undefined
  return new OutgoingInvalidError(typeof action === 'string' ? `'${action.slice(0, 64)}'` : 'without an action')
}

export const OUTGOING_INVALID: unique symbol = Symbol('fastify-chanx.outgoing-invalid')

/** The JSON text of a handler's message; `undefined` when it cannot be serialized (a getter threw, a cycle). */
export function prepare (router: MessageRouter, message: unknown, idJson: string | null): string | undefined | typeof OUTGOING_INVALID {
  try {
    if (router.validateOutgoing && !outgoingValid(router, message)) return OUTGOING_INVALID
    // Only withId below may put an `id` on what the client gets (docs/protocol.md): the handler's own is dropped.
    const text = JSON.stringify(withoutServerFields(message)) as string | undefined
    return idJson === null || text === undefined || text.charCodeAt(0) !== 123 ? text : withId(text, idJson)
  } catch {
    return undefined
  }
}

/**
 * The JSON of a frame's correlation `id` (a string of at most `MAX_ID_LENGTH` characters, or a finite
 * number); `undefined` when the frame has an `id` of another kind.
 */
export function idJsonOf (id: unknown): string | undefined {
  if (typeof id === 'string') return id.length <= MAX_ID_LENGTH ? JSON.stringify(id) : undefined
  return typeof id === 'number' && Number.isFinite(id) ? JSON.stringify(id) : undefined
}

/**
 * A JSON object's text with the frame's `id` as its last top-level key (an extension Chanx clients
 * ignore). Only frames that carry an `id` pay for this: `null` leaves the prebuilt text as it is.
 */
export function withId (text: string, idJson: string | null): string {
  if (idJson === null) return text
  return text.length === 2 ? '{"id":' + idJson + '}' : text.slice(0, -1) + ',"id":' + idJson + '}'
}
