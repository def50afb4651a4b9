/**
 * The inter-process envelope: what one process's hub sends another over the channel layer (Redis), and the
 * flags appended to each delivered copy. Kept apart from the hub, as Chanx's `core/envelope.py` is, so the hub,
 * the history and the replay can each import it without importing one another.
 */

import { createHmac, timingSafeEqual } from 'node:crypto'

// ---------------------------------------------------------------- the channel envelope
//
// What one process's hub sends another over the channel layer (Redis). Internal between our processes,
// but Redis is a trust boundary: whoever can PUBLISH on the prefix can write envelopes, so every one is
// checked in full before anything is delivered, and signed when a secret is configured.
//
// An envelope is a JSON object that always begins with `{"v":1,"o":"<origin>","k":"<kind>"`, so a hub
// recognizes its own echo (Redis returns a publisher's message to it) with one startsWith, unparsed.
//   b  broadcast      g: target groups, s: sender's userKey or null, m: the message's JSON, as a string
//   u  to a user      m: the message's JSON, as a string (sent on the user's channel)
//   c  close a user   c: close code, r: reason (on the user's channel)
//   e  channel event  g: target groups, n: event name, p: payload
//   q  size query     i: query id (on the group's channel; every process with members answers)
//   a  size answer    i: query id, n: local member count (on the asker's reply channel)
// A message travels as a string inside the envelope so that a receiving process builds its at most
// three variants by concatenation; it is parsed once per process on receipt, only to prove it is a JSON
// object. Layer channels: `g:<group>`, `u:<userKey>`, `r:<origin>`.
// Signed (a secret is set): `,"h":"<hex HMAC-SHA256>"}` ends the envelope, over the layer channel and
// every byte before it, so a signed envelope can be neither altered nor replayed onto another channel.

const ENVELOPE_VERSION = 1
/** The longest group name, user key or event name the hub accepts. */
export const MAX_CHANNEL_NAME = 256
const MAX_ORIGIN = 64
const SIGNATURE_HEX = 64
/** `,"h":"` + 64 hex digits + `"}` */
const SIGNATURE_TAIL = 6 + SIGNATURE_HEX + 2

export type Envelope =
  | { k: 'b', o: string, g: string[], s: string | null, m: string }
  | { k: 'u', o: string, m: string }
  | { k: 'c', o: string, c: number, r: string }
  | { k: 'e', o: string, g: string[], n: string, p: unknown }
  | { k: 'q', o: string, i: number }
  | { k: 'a', o: string, i: number, n: number }

function mac (key: Buffer, channel: string, signed: string): Buffer {
  // The channel's length first, so that no channel/content split can be read two ways.
  return createHmac('sha256', key).update(channel.length + ':' + channel + '\n').update(signed).digest()
}

function isName (value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_CHANNEL_NAME
}

function isNameList (value: unknown): value is string[] {
  if (!Array.isArray(value) || value.length === 0) return false
  for (let i = 0; i < value.length; i++) if (!isName(value[i])) return false
  return true
}

/**
 * The text of a JSON object, or null: parsed once to prove it, then used as it is. `signed`: the envelope's
 * signature proved that a hub sharing the secret built it from a serialized object, so the parse is skipped.
 */
function objectText (value: unknown, signed: boolean): string | null {
  if (typeof value !== 'string' || value.length < 2 || value.charCodeAt(0) !== 123 || value.charCodeAt(value.length - 1) !== 125) return null
  if (signed) return value
  let parsed: unknown
  try {
    parsed = JSON.parse(value)
  } catch {
    return null
  }
  // `{ }` would become `{ ,"is_mine":…}` once flags are appended: the empty object is spelled `{}`.
  return value.length > 2 && Object.keys(parsed as object).length > 0 ? value : '{}'
}

function isCloseCode (value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && (value === 1000 || (value >= 3000 && value <= 4999))
}

function isCount (value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

/** Builds, signs, checks and parses the envelopes of one hub. */
export class EnvelopeCodec {
  /** How every envelope of this hub begins: its own echo is recognized by it. */
  readonly prefix: string
  readonly origin: string
  private readonly keys: readonly Buffer[]

  constructor (origin: string, keys: readonly Buffer[] = []) {
    this.origin = origin
    this.prefix = `{"v":${ENVELOPE_VERSION},"o":${JSON.stringify(origin)},`
    this.keys = keys
  }

  get signed (): boolean {
    return this.keys.length > 0
  }

  broadcast (groups: readonly string[], senderKey: string | null, body: string): string {
    return this.prefix + '"k":"b","g":' + JSON.stringify(groups) + ',"s":' + JSON.stringify(senderKey) + ',"m":' + JSON.stringify(body) + '}'
  }

  toUser (body: string): string {
    return this.prefix + '"k":"u","m":' + JSON.stringify(body) + '}'
  }

  close (code: number, reason: string): string {
    return this.prefix + '"k":"c","c":' + code + ',"r":' + JSON.stringify(reason) + '}'
  }

  /** `payloadJson`: the payload already serialized. */
  event (groups: readonly string[], name: string, payloadJson: string): string {
    return this.prefix + '"k":"e","g":' + JSON.stringify(groups) + ',"n":' + JSON.stringify(name) + ',"p":' + payloadJson + '}'
  }

  sizeQuery (id: number): string {
    return this.prefix + '"k":"q","i":' + id + '}'
  }

  sizeAnswer (id: number, count: number): string {
    return this.prefix + '"k":"a","i":' + id + ',"n":' + count + '}'
  }

  /** The envelope as published on `channel`: itself, or signed for that channel when a secret is set. */
  seal (channel: string, envelope: string): string {
    if (this.keys.length === 0) return envelope
    const signed = envelope.slice(0, -1)
    return signed + ',"h":"' + mac(this.keys[0], channel, signed).toString('hex') + '"}'
  }

  /**
   * The envelope received on `channel`, checked in full (signature, JSON, every field's type, the kind
   * against the channel), or the reason it is refused.
   */
  open (channel: string, text: string): Envelope | string {
    if (this.keys.length > 0) {
      const reason = this.verify(channel, text)
      if (reason !== null) return reason
    }
    let env: Record<string, unknown>
    try {
      env = JSON.parse(text)
    } catch {
      return 'not JSON'
    }
    if (typeof env !== 'object' || env === null || Array.isArray(env)) return 'not an object'
    if (env.v !== ENVELOPE_VERSION) return 'unknown version'
    if (typeof env.o !== 'string' || env.o.length === 0 || env.o.length > MAX_ORIGIN) return 'bad origin'
    const kind = channel.charCodeAt(0) // g, u or r
    switch (env.k) {
      case 'b': {
        if (kind !== 103 || !isNameList(env.g) || !(env.s === null || isName(env.s))) return 'bad broadcast'
        const body = objectText(env.m, this.keys.length > 0)
        if (body === null) return 'broadcast message is not a JSON object'
        env.m = body
        break
      }
      case 'u': {
        if (kind !== 117) return 'bad user message'
        const body = objectText(env.m, this.keys.length > 0)
        if (body === null) return 'user message is not a JSON object'
        env.m = body
        break
      }
      case 'c':
        if (kind !== 117 || !isCloseCode(env.c) || typeof env.r !== 'string' || Buffer.byteLength(env.r) > 123) return 'bad close'
        break
      case 'e':
        if (kind !== 103 || !isNameList(env.g) || !isName(env.n) || !('p' in env)) return 'bad event'
        break
      case 'q':
        if (kind !== 103 || !isCount(env.i)) return 'bad size query'
        break
      case 'a':
        if (kind !== 114 || !isCount(env.i) || !isCount(env.n)) return 'bad size answer'
        break
      default:
        return 'unknown kind'
    }
    return env as Envelope
  }

  private verify (channel: string, text: string): string | null {
    const at = text.length - SIGNATURE_TAIL
    if (at < 2 || !text.startsWith(',"h":"', at) || !text.endsWith('"}')) return 'unsigned'
    const given = Buffer.from(text.slice(at + 6, at + 6 + SIGNATURE_HEX), 'hex')
    if (given.length !== SIGNATURE_HEX / 2) return 'bad signature'
    const signed = text.slice(0, at)
    for (let i = 0; i < this.keys.length; i++) {
      if (timingSafeEqual(mac(this.keys[i], channel, signed), given)) return null
    }
    return 'bad signature'
  }
}

// ---------------------------------------------------------------- presence entries
//
// With a secret, each presence entry's JSON is stored behind the hex HMAC of the same construction, over
// the entry's hash key and field (the writing hub's origin), so an entry can be neither forged nor moved to
// another group or process. The "channel" these are signed for begins with a NUL, which no hub channel does.

/** The hex signature of a presence entry's JSON `json`, field `field` of hash `hash`. */
export function signPresence (key: Buffer, hash: string, field: string, json: string): string {
  return mac(key, '\u0000presence\u0000' + hash + '\u0000' + field, json).toString('hex')
}

/** The entry's JSON if `value` (`<hex signature><json>`) is signed by one of `keys` for that hash and field. */
export function verifyPresence (keys: readonly Buffer[], hash: string, field: string, value: string): string | null {
  if (value.length <= SIGNATURE_HEX) return null
  const given = Buffer.from(value.slice(0, SIGNATURE_HEX), 'hex')
  if (given.length !== SIGNATURE_HEX / 2) return null
  const json = value.slice(SIGNATURE_HEX)
  for (let i = 0; i < keys.length; i++) {
    if (timingSafeEqual(mac(keys[i]!, '\u0000presence\u0000' + hash + '\u0000' + field, json), given)) return json
  }
  return null
}

/** `body` (a JSON object's text) with is_mine and is_current appended: they win over any the sender set. */
export function withFlags (body: string, mine: boolean, current: boolean): string {
  const flags = mine
    ? (current ? '"is_mine":true,"is_current":true}' : '"is_mine":true,"is_current":false}')
    : (current ? '"is_mine":false,"is_current":true}' : '"is_mine":false,"is_current":false}')
  return body.length === 2 ? '{' + flags : body.slice(0, -1) + ',' + flags
}
