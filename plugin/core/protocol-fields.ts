/**
 * The top-level fields only the server sets (docs/protocol.md#fields-only-the-server-sets): `id` on a reply
 * to the connection's own frame, `is_mine`/`is_current` on broadcast copies, `chanx_pos`/`chanx_upos` from
 * history, `chanx_recovery` on the authentication message. A client trusts them, so whatever a handler or
 * `app.chanx` sends has them removed first: a handler that relays a client's frame cannot forge them.
 */
const SERVER_FIELDS = ['id', 'is_mine', 'is_current', 'chanx_pos', 'chanx_upos', 'chanx_recovery']

/** `message`, or a shallow copy without the server's fields when it has one of its own (the rare case pays). */
export function withoutServerFields<T> (message: T): T {
  if (typeof message !== 'object' || message === null || Array.isArray(message)) return message
  for (let i = 0; i < SERVER_FIELDS.length; i++) {
    if (Object.hasOwn(message, SERVER_FIELDS[i]!)) {
      const copy = { ...message } as Record<string, unknown>
      for (const field of SERVER_FIELDS) delete copy[field]
      return copy as T
    }
  }
  return message
}
