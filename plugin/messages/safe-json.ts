/**
 * JSON parsing for frames a client controls. Two dangers come before validation:
 *
 * - Deep nesting: `JSON.parse` copes with thousands of levels, but everything after it that recurses
 *   (compiled validators, `JSON.stringify` in a logger, a handler's own walk) overflows the stack at
 *   about 12 KB of brackets. The depth is checked first: a text with no more opening brackets than the
 *   limit passes at once (counted with native `indexOf` jumps); any other is walked by a scan that only
 *   counts brackets outside strings, so a hostile frame costs linear passes and no allocation.
 * - Prototype keys: `JSON.parse` makes `"__proto__"` an own property, harmless until a handler merges
 *   the object into another. Such keys (and `constructor` objects carrying `prototype`) are removed, as
 *   secure-json-parse does; the walk that removes them runs only when the text could hold one.
 */

/** Nesting allowed by default: deeper than any sane message, far from any stack limit. */
export const DEFAULT_MAX_DEPTH = 64

/** Returned by `safeParse` for text that is not JSON, or is nested too deeply. */
export const INVALID: unique symbol = Symbol('fastify-chanx.invalid-json')

const OPEN_BRACE = 123 // {
const OPEN_BRACKET = 91 // [
const CLOSE_BRACE = 125 // }
const CLOSE_BRACKET = 93 // ]
const QUOTE = 34 // "
const BACKSLASH = 92 // \

/**
 * True when `text` nests objects/arrays deeper than `maxDepth`. Brackets inside strings do not count.
 * Malformed text is not judged here (JSON.parse does that); only its depth.
 */
export function exceedsDepth (text: string, maxDepth: number): boolean {
  // A text shorter than the limit cannot hold more brackets than the limit, nor can a text with fewer
  // opening brackets, wherever they are: counted first by native jumps (indexOf), so a message of a few
  // kilobytes with a handful of brackets is never walked character by character in JS.
  if (text.length <= maxDepth || fewOpenings(text, maxDepth)) return false
  let depth = 0
  const length = text.length
  for (let i = 0; i < length; i++) {
    const code = text.charCodeAt(i)
    if (code === QUOTE) {
      // Skip the string: to the next quote not escaped by a backslash.
      for (i++; i < length; i++) {
        const c = text.charCodeAt(i)
        if (c === BACKSLASH) i++
        else if (c === QUOTE) break
      }
    } else if (code === OPEN_BRACE || code === OPEN_BRACKET) {
      if (++depth > maxDepth) return true
    } else if (code === CLOSE_BRACE || code === CLOSE_BRACKET) {
      depth--
    }
  }
  return false
}

/** True when `text` holds at most `limit` `{` and `[` together. */
function fewOpenings (text: string, limit: number): boolean {
  let count = 0
  for (let at = text.indexOf('{'); at >= 0; at = text.indexOf('{', at + 1)) if (++count > limit) return false
  for (let at = text.indexOf('['); at >= 0; at = text.indexOf('[', at + 1)) if (++count > limit) return false
  return true
}

// `"__proto__"` can also be spelled with \u escapes, which JSON.parse decodes: any backslash-u in a
// text that also mentions the key names' letters makes us walk the result.
function mayHoldPrototypeKeys (text: string): boolean {
  return text.includes('__proto__') || text.includes('constructor') || text.includes('\\u')
}

/** Removes `__proto__` keys, and `constructor` keys whose value carries `prototype`, at any depth. */
function scrub (value: unknown): void {
  if (value === null || typeof value !== 'object') return
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) scrub(value[i])
    return
  }
  const record = value as Record<string, unknown>
  // An own `__proto__` key (JSON.parse makes one) is deleted, never followed: that is the point of the check.
  // eslint-disable-next-line no-proto
  if (Object.prototype.hasOwnProperty.call(record, '__proto__')) delete record.__proto__
  if (Object.prototype.hasOwnProperty.call(record, 'constructor')) {
    const ctor = record.constructor
    if (ctor !== null && typeof ctor === 'object' && Object.prototype.hasOwnProperty.call(ctor, 'prototype')) {
      delete (record as { constructor?: unknown }).constructor
    }
  }
  for (const key in record) scrub(record[key])
}

function parse (text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return INVALID
  }
}

/**
 * Parses client text: `INVALID` when it is not JSON or nests deeper than `maxDepth`; otherwise the value,
 * with prototype keys removed.
 */
export function safeParse (text: string, maxDepth: number = DEFAULT_MAX_DEPTH): unknown {
  if (exceedsDepth(text, maxDepth)) return INVALID
  const value = parse(text)
  if (value !== INVALID && typeof value === 'object' && value !== null && mayHoldPrototypeKeys(text)) scrub(value)
  return value
}
