import { EPOCH, type Position } from './model'

/**
 * Positions on the wire (docs/protocol.md): `chanx_pos` on a group broadcast, `chanx_upos` on a user message, and
 * the record format a store that publishes (Redis) keeps and sends.
 */

function positionText (offset: number, epoch: string): string {
  return '[' + offset + ',"' + epoch + '"]'
}

/** `body` with `"chanx_pos":{…}` appended: the position of the message in each of `groups`. */
export function withGroupPositions (body: string, groups: readonly string[], positions: readonly Position[]): string {
  let field = '"chanx_pos":{'
  for (let i = 0; i < groups.length; i++) {
    if (i > 0) field += ','
    field += JSON.stringify(groups[i]) + ':' + positionText(positions[i]!.offset, positions[i]!.epoch)
  }
  return appendField(body, field + '}')
}

/** `body` with `"chanx_upos":[offset,"epoch"]` appended: its position in the user's stream. */
export function withUserPosition (body: string, position: Position): string {
  return appendField(body, '"chanx_upos":' + positionText(position.offset, position.epoch))
}

function appendField (body: string, field: string): string {
  return body.length === 2 ? '{' + field + '}' : body.slice(0, -1) + ',' + field + '}'
}

const GROUP_FIELD = ',"chanx_pos":'
const USER_FIELD = '"chanx_upos":'

/**
 * The positions a frame (a broadcast copy or a user message, flags included) carries: `group -> offset`,
 * with `''` for the user stream; null when it carries none. Only the handshake's live frames are read so.
 */
export function framePositions (frame: string): Map<string, number> | null {
  const user = frame.lastIndexOf(USER_FIELD)
  if (user !== -1 && frame.endsWith(']}')) {
    const offset = Number(frame.slice(user + USER_FIELD.length + 1, frame.indexOf(',', user)))
    return Number.isSafeInteger(offset) ? new Map([['', offset]]) : null
  }
  const at = frame.lastIndexOf(GROUP_FIELD)
  if (at === -1) return null
  const end = frame.lastIndexOf(',"is_mine":')
  try {
    const parsed = JSON.parse(frame.slice(at + GROUP_FIELD.length, end > at ? end : -1)) as Record<string, [number, string]>
    const out = new Map<string, number>()
    for (const group of Object.keys(parsed)) out.set(group, parsed[group]![0])
    return out
  } catch {
    return null
  }
}

/**
 * A record: `<excluded 0|1>~<sender identity>~<envelope>`. Published positioned: `~<offset>~<epoch>~<record>`.
 * Identities and epochs never hold `~`, and an envelope starts with `{`, so the first `~`s split it.
 */
export function historyRecord (excluded: boolean, sender: string | null, envelope: string): string {
  return (excluded ? '1~' : '0~') + (sender ?? '') + '~' + envelope
}

export interface ParsedRecord {
  readonly excluded: boolean
  readonly sender: string | null
  readonly envelope: string
}

export function parseRecord (record: string): ParsedRecord | null {
  const flag = record.charCodeAt(0)
  if ((flag !== 48 && flag !== 49) || record.charCodeAt(1) !== 126) return null
  const end = record.indexOf('~', 2)
  if (end === -1 || end > 200) return null
  return { excluded: flag === 49, sender: end === 2 ? null : record.slice(2, end), envelope: record.slice(end + 1) }
}

/** The most target groups whose positions one publication carries (checkGroups allows no more). */
const MAX_POSITIONS = 1000

/**
 * `~<offset>~<epoch>~<record>` split, or null. A broadcast to several groups kept by one script (one
 * redis-server) adds the position of every target group, in the envelope's order, before the record:
 * `~<offset>~<epoch>~P<offset>,<epoch>;<offset>,<epoch>…~<record>` (`all`; null without it).
 */
export function parsePositioned (text: string): { offset: number, epoch: string, record: string, all: Position[] | null } | null {
  const a = text.indexOf('~', 1)
  const b = a === -1 ? -1 : text.indexOf('~', a + 1)
  if (text.charCodeAt(0) !== 126 || b === -1 || b - a > 65) return null
  const offset = Number(text.slice(1, a))
  const epoch = text.slice(a + 1, b)
  // Whoever can publish on Redis wrote this, and the epoch goes into frames as it is.
  if (!Number.isSafeInteger(offset) || offset < 1 || !EPOCH.test(epoch)) return null
  if (text.charCodeAt(b + 1) !== 80) return { offset, epoch, record: text.slice(b + 1), all: null }
  const c = text.indexOf('~', b + 2)
  if (c === -1) return null
  const parts = text.slice(b + 2, c).split(';')
  if (parts.length < 2 || parts.length > MAX_POSITIONS) return null
  const all: Position[] = []
  for (const part of parts) {
    const comma = part.indexOf(',')
    const o = Number(part.slice(0, comma))
    const e = part.slice(comma + 1)
    if (comma === -1 || !Number.isSafeInteger(o) || o < 1 || !EPOCH.test(e)) return null
    all.push({ offset: o, epoch: e })
  }
  return { offset, epoch, record: text.slice(c + 1), all }
}
