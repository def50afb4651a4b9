/**
 * The client's resume state (docs/recovery.md, "The client's resume state"): the recovery token and the last
 * position of each stream, how it is merged with what an authentication message says, and how it is put in
 * the handshake's URL without passing the server's header limit. No Node-only import.
 */

/** A resume position, `[offset, epoch]`, as the server sends it. */
export type Position = [number, string]

export interface ResumeState {
  t: string
  g: Record<string, Position>
  u: Position | undefined
}

type Json = Record<string, unknown>
export const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null
export const isPosition = (value: unknown): value is Position =>
  Array.isArray(value) && value.length === 2 && Number.isSafeInteger(value[0]) && typeof value[1] === 'string'

/**
 * The reason the client gives itself for a group whose position did not fit in the resume parameter: it
 * was not asked for, so the app refetches it (never silently skipped).
 */
export const NOT_SENT = 'too_many_groups'

/** The default bound on the `chanx_recover` parameter's length (characters): Node refuses headers over 16 KiB. */
export const MAX_RESUME_LENGTH = 8192

/**
 * The state to resume with next time, from the previous state and an authentication's `chanx_recovery`
 * (already checked to carry a token and a positions object). The rule, per stream the client had:
 *
 * - `unavailable`: the server could not read the stream (or could not order its replay against live
 *   copies); nothing after the old position was replayed, so the old position is kept, even when the
 *   server sends a newer one: the next resume asks again;
 * - `not_allowed`: the group is gone (or the user stream, for a socket no longer authenticated): dropped;
 * - `window_exceeded`, `epoch_changed`, `too_many_groups`: the app refetches, and the server's current
 *   position is the baseline to continue from;
 * - replayed: the server's position is after the replay, so it is taken;
 * - omitted by the server without a reason: the old position is kept, so the next resume asks again
 *   (and hears `not_allowed` if the group is gone).
 *
 * `invalid_token` discards the old state: the server started a new lineage, and every stream is refetched.
 */
export function mergeResume (old: ResumeState | null, recovery: Json & { token: string, positions: Json }): ResumeState {
  const positions = recovery.positions
  const groups: Record<string, Position> = Object.create(null)
  for (const group of Object.keys(positions)) {
    if (isPosition(positions[group])) groups[group] = positions[group]
  }
  const serverUser = isPosition(recovery.user_position) ? recovery.user_position : undefined
  if (old === null || recovery.reason === 'invalid_token') return { t: recovery.token, g: groups, u: serverUser }
  const failed = isObject(recovery.failed) ? recovery.failed : {}
  for (const group of Object.keys(old.g)) {
    const reason = Object.hasOwn(failed, group) ? failed[group] : undefined
    if (reason === 'not_allowed') delete groups[group]
    else if (reason === 'unavailable' || !Object.hasOwn(groups, group)) groups[group] = old.g[group]!
  }
  let user = serverUser
  if (recovery.user_failed === 'unavailable' || (user === undefined && recovery.user_failed !== 'not_allowed')) user = old.u
  return { t: recovery.token, g: groups, u: user }
}

/**
 * The `chanx_recover` value for `state`: base64url of `{"t":…,"g":{…},"u":…}`, at most `limit` characters.
 * The longest prefix of the state's groups that fits is sent (found by halving: a few encodings, however
 * many groups); `unsent` receives the others (the client reports them itself as not recovered). The token
 * and the user position always go.
 */
export function encodeResume (state: ResumeState, limit: number, unsent: string[]): string {
  const names = Object.keys(state.g)
  const encode = (count: number): string => {
    const g: Record<string, Position> = Object.create(null)
    for (let i = 0; i < count; i++) g[names[i]!] = state.g[names[i]!]!
    return base64url(JSON.stringify({ t: state.t, g, u: state.u }))
  }
  let low = 0
  let high = names.length
  while (low < high) {
    const mid = (low + high + 1) >> 1
    if (encode(mid).length <= limit) low = mid
    else high = mid - 1
  }
  unsent.push(...names.slice(low))
  return encode(low)
}

function base64url (text: string): string {
  let binary = ''
  const bytes = new TextEncoder().encode(text)
  for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]!)
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}
