/**
 * pydantic's lax mode for TypeBox schemas (DESIGN "Messages after the handshake"): Chanx validates frames
 * with pydantic, which by default accepts `"5"` for an int, `"true"` for a bool, `5.0` for an int. A
 * coercer is built once per action when the route is compiled, by walking its schema; it runs only after
 * the compiled check has failed, so a valid frame pays nothing.
 *
 * A coercer never mutates its input (a union tries its members one after another): it returns the input
 * itself when nothing changed, and copies an object or array only on its first changed element. A value
 * it cannot convert is returned as it was, so the check fails on it and the error names it.
 *
 * The rules are pydantic-core's (`src/input/shared.rs`, `input_python.rs`): strings to integers (spaces
 * trimmed, `_` between digits, a `.0` tail), strings to floats, bools to numbers, pydantic's bool words
 * (`true/false/yes/no/on/off/t/f/y/n/1/0`, any case) and `0`/`1` to booleans. Numbers are never turned into
 * strings (pydantic's `coerce_numbers_to_str` is off by default), and literals match exactly, as pydantic's do.
 */
import { Hint, Kind, type TSchema } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'

/** Converts a value the way pydantic's lax mode would; returns the value itself when it has nothing to do. */
export type Coercer = (value: unknown) => unknown

const INTEGER_TEXT = /^[+-]?\d+(?:_\d+)*(?:\.0+)?$/
const FLOAT_TEXT = /^[+-]?(?:\d+(?:_\d+)*(?:\.(?:\d+(?:_\d+)*)?)?|\.\d+(?:_\d+)*)(?:[eE][+-]?\d+(?:_\d+)*)?$/
const TRUE_WORDS = new Set(['1', 't', 'y', 'on', 'yes', 'true'])
const FALSE_WORDS = new Set(['0', 'f', 'n', 'no', 'off', 'false'])

/** `"+1_000.00"` → 1000; anything else pydantic refuses (or a JS number could not hold exactly) stays as it was. */
export function integerFromText (text: string): number | undefined {
  const trimmed = text.trim()
  if (!INTEGER_TEXT.test(trimmed)) return undefined
  const dot = trimmed.indexOf('.')
  const value = Number((dot === -1 ? trimmed : trimmed.slice(0, dot)).replace(/_/g, ''))
  return Number.isSafeInteger(value) ? (Object.is(value, -0) ? 0 : value) : undefined
}

export function floatFromText (text: string): number | undefined {
  const trimmed = text.trim()
  if (!FLOAT_TEXT.test(trimmed)) return undefined
  const value = Number(trimmed.replace(/_/g, ''))
  return Number.isFinite(value) ? value : undefined
}

export function booleanFrom (value: unknown): boolean | undefined {
  if (typeof value === 'string') {
    const word = value.length <= 5 ? value.toLowerCase() : ''
    if (TRUE_WORDS.has(word)) return true
    if (FALSE_WORDS.has(word)) return false
    return undefined
  }
  if (value === 0 || value === 1) return value === 1
  return undefined
}

function toInteger (value: unknown): unknown {
  if (typeof value === 'string') return integerFromText(value) ?? value
  if (typeof value === 'boolean') return value ? 1 : 0
  return value
}

function toNumber (value: unknown): unknown {
  if (typeof value === 'string') return floatFromText(value) ?? value
  if (typeof value === 'boolean') return value ? 1 : 0
  return value
}

function toBoolean (value: unknown): unknown {
  return booleanFrom(value) ?? value
}

function isPlainObject (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

function objectCoercer (schema: TSchema): Coercer | null {
  const entries: [string, Coercer][] = []
  for (const [key, property] of Object.entries((schema.properties ?? {}) as Record<string, TSchema>)) {
    const coerce = build(property)
    if (coerce !== null) entries.push([key, coerce])
  }
  if (entries.length === 0) return null
  return (value) => {
    if (!isPlainObject(value)) return value
    let result: Record<string, unknown> = value
    for (const [key, coerce] of entries) {
      if (Object.prototype.hasOwnProperty.call(value, key)) result = withCoerced(value, result, key, coerce)
    }
    return result
  }
}

/** Copy on write: `result` is `value` until an entry converts, then a shallow copy holding the converted entries. */
function withCoerced (value: Record<string, unknown>, result: Record<string, unknown>, key: string, coerce: Coercer): Record<string, unknown> {
  const before = value[key]
  const after = coerce(before)
  if (after === before) return result
  const copy = result === value ? { ...value } : result
  copy[key] = after
  return copy
}

function recordCoercer (schema: TSchema): Coercer | null {
  const patterns = (schema.patternProperties ?? {}) as Record<string, TSchema>
  const [valueSchema] = Object.values(patterns)
  const coerce = valueSchema === undefined ? null : build(valueSchema)
  if (coerce === null) return null
  return (value) => {
    if (!isPlainObject(value)) return value
    let result: Record<string, unknown> = value
    for (const key of Object.keys(value)) result = withCoerced(value, result, key, coerce)
    return result
  }
}

/** `withCoerced` for arrays: `result` is `value` until an item converts, then a copy holding the converted items. */
function withCoercedItem (value: unknown[], result: unknown[], i: number, coerce: Coercer): unknown[] {
  const before: unknown = value[i]
  const after = coerce(before)
  if (after === before) return result
  const copy = result === value ? value.slice() : result
  copy[i] = after
  return copy
}

function arrayCoercer (schema: TSchema): Coercer | null {
  const coerce = build(schema.items as TSchema)
  if (coerce === null) return null
  return (value) => {
    if (!Array.isArray(value)) return value
    let result: unknown[] = value
    for (let i = 0; i < value.length; i++) result = withCoercedItem(value, result, i, coerce)
    return result
  }
}

function tupleCoercer (schema: TSchema): Coercer | null {
  const items = ((schema.items ?? []) as TSchema[]).map(build)
  if (items.every((coerce) => coerce === null)) return null
  return (value) => {
    if (!Array.isArray(value)) return value
    let result: unknown[] = value
    for (let i = 0; i < value.length && i < items.length; i++) {
      const coerce = items[i]
      if (coerce !== null && coerce !== undefined) result = withCoercedItem(value, result, i, coerce)
    }
    return result
  }
}

/** pydantic's smart union: a member that takes the value as it is wins; else the first that takes it converted. */
function unionCoercer (schema: TSchema): Coercer | null {
  const members = (schema.anyOf ?? []) as TSchema[]
  if (schema[Hint] === 'Enum') return enumCoercer(members)
  const coercers = members.map(build)
  if (coercers.every((coerce) => coerce === null)) return null
  let checks: TypeCheck<TSchema>[]
  try {
    checks = members.map((member) => TypeCompiler.Compile(member))
  } catch {
    return null // a member refers to schemas we cannot see (Ref, This): left strict
  }
  return (value) => {
    for (const check of checks) if (check.Check(value)) return value
    for (let i = 0; i < coercers.length; i++) {
      const coerce = coercers[i]
      if (coerce === null || coerce === undefined) continue
      const after = coerce(value)
      if (after !== value && (checks[i] as TypeCheck<TSchema>).Check(after)) return after
    }
    return value
  }
}

/** pydantic's int and float enums take numeric strings; string enums match exactly. */
function enumCoercer (members: TSchema[]): Coercer | null {
  const numbers = new Set(members.map((member) => member.const as unknown).filter((value) => typeof value === 'number'))
  if (numbers.size === 0) return null
  return (value) => {
    if (typeof value !== 'string') return value
    const number = floatFromText(value)
    return number !== undefined && numbers.has(number) ? number : value
  }
}

function build (schema: TSchema): Coercer | null {
  switch (schema[Kind]) {
    case 'Integer': return toInteger
    case 'Number': return toNumber
    case 'Boolean': return toBoolean
    case 'Object': return objectCoercer(schema)
    case 'Record': return recordCoercer(schema)
    case 'Array': return arrayCoercer(schema)
    case 'Tuple': return tupleCoercer(schema)
    case 'Union': return unionCoercer(schema)
    default: return null
  }
}

/** The coercer of a payload schema, built once; `null` when nothing in it can be converted. */
export function compileCoercer (schema: TSchema): Coercer | null {
  return build(schema)
}
