/**
 * A stable string for "who is this user", to count a user's sockets, address them from anywhere and
 * tell whether a broadcast is theirs (`is_mine`). Anonymous users have none.
 */
export type UserKeyFunction = (user: unknown) => string | null | undefined

/** The key of `user` by `userKey`; null for an anonymous user (null or undefined), which `userKey` never sees. */
export function keyOfUser (userKey: UserKeyFunction, user: unknown): string | null {
  return user === null || user === undefined ? null : userKey(user) ?? null
}

/** Default: the user itself when it is a string or number, else its `id`, `sub` or `username`. */
export function defaultUserKey (user: unknown): string | null {
  if (user === null || user === undefined) return null
  if (typeof user === 'string' || typeof user === 'number' || typeof user === 'bigint') return String(user)
  if (typeof user === 'object') {
    const candidate = user as { id?: unknown, sub?: unknown, username?: unknown }
    for (const value of [candidate.id, candidate.sub, candidate.username]) {
      if (typeof value === 'string' || typeof value === 'number' || typeof value === 'bigint') return String(value)
    }
  }
  return null
}
