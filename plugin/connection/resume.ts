import { createHash, randomBytes } from 'node:crypto'
import type { Position } from '../channels/history/model'

/**
 * The resume parameters of a handshake (docs/recovery.md). A reconnecting client sends its recovery
 * token and last positions in one query parameter, `chanx_recover`, whose value is base64url of
 * `{"t":"<token>","g":{"<group>":[offset,"epoch"],…},"u":[offset,"epoch"]}`. The parameter is among the
 * route's credential parameters, so log lines carry `chanx_recover=[REDACTED]` (handshake/redaction.ts).
 */
export const RESUME_PARAM = 'chanx_recover'

/** A resume the server will not read further than this (about 1,000 groups with long names). */
const MAX_RESUME_LENGTH = 65_536
const MAX_RESUMED_GROUPS = 1000

export interface ResumeRequest {
  readonly token: string
  readonly groups: ReadonlyMap<string, Position>
  readonly user: Position | null
}

/**
 * A recovery token: 16 random bytes, then a tag of the user it was issued to (both base64url), so that
 * positions read as one user's stream are never resumed as another's. It names a connection's lineage:
 * a resumed connection keeps it, and what the lineage sent with excludeSelf is not replayed to it.
 */
const TOKEN = /^[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{11}$/

function userTag (userKey: string | null): string {
  return createHash('sha256').update('fastify-chanx recovery\n' + (userKey ?? '')).digest('base64url').slice(0, 11)
}

export function newRecoveryToken (userKey: string | null): string {
  return randomBytes(16).toString('base64url') + '.' + userTag(userKey)
}

/** Whether `token` is well formed and was issued to `userKey`. */
export function tokenFits (token: string, userKey: string | null): boolean {
  return TOKEN.test(token) && token.slice(23) === userTag(userKey)
}

function isPosition (value: unknown): value is [number, string] {
  return Array.isArray(value) && value.length === 2 && Number.isSafeInteger(value[0]) && value[0] >= 0 &&
    typeof value[1] === 'string' && /^[0-9a-z]{1,32}$/.test(value[1])
}

/**
 * The resume the handshake's URL carries: null when it carries none, `'invalid'` when it carries one that
 * cannot be read (the client is told `invalid_token` and starts afresh).
 */
export function readResume (url: string): ResumeRequest | 'invalid' | null {
  const question = url.indexOf('?')
  if (question === -1) return null
  const raw = new URLSearchParams(url.slice(question + 1)).get(RESUME_PARAM)
  if (raw === null) return null
  if (raw.length > MAX_RESUME_LENGTH) return 'invalid'
  let parsed: { t?: unknown, g?: unknown, u?: unknown }
  try {
    parsed = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'))
  } catch {
    return 'invalid'
  }
  if (parsed === null || typeof parsed !== 'object' || typeof parsed.t !== 'string' || !TOKEN.test(parsed.t)) return 'invalid'
  const groups = new Map<string, Position>()
  const g = parsed.g ?? {}
  if (g === null || typeof g !== 'object' || Array.isArray(g)) return 'invalid'
  const names = Object.keys(g)
  if (names.length > MAX_RESUMED_GROUPS) return 'invalid'
  for (const name of names) {
    const value = (g as Record<string, unknown>)[name]
    if (!isPosition(value)) return 'invalid'
    groups.set(name, { offset: value[0], epoch: value[1] })
  }
  let user: Position | null = null
  if (parsed.u !== undefined && parsed.u !== null) {
    if (!isPosition(parsed.u)) return 'invalid'
    user = { offset: parsed.u[0], epoch: parsed.u[1] }
  }
  return { token: parsed.t, groups, user }
}
