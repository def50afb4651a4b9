/**
 * Integers a JavaScript number holds exactly (DESIGN "Messages after the handshake"; docs/messages.md).
 * `JSON.parse` turns the literal 9007199254740995 into 9007199254740996: once parsed, the client's digits are
 * gone, and a handler would act on another number than the one sent. So every schema the router compiles
 * (both TypeBox lines) is checked in a copy whose integer schemas are bounded to ±Number.MAX_SAFE_INTEGER:
 * an integer field given a number outside that range fails the check, and is answered with the bound
 * (`less_than_equal` / `greater_than_equal`), as a declared `maximum` would be. A valid frame pays two
 * comparisons per integer field, nothing else. The schema as declared (AsyncAPI, coercion) is untouched.
 *
 * A number schema (`Type.Number()`) is left alone: a float is an approximation by contract, and 2^53 + 1 given
 * to it is handled as the nearest double, as every JSON parser does.
 */

/** Keywords whose value is one schema. */
const SCHEMA_KEYS = ['items', 'additionalItems', 'additionalProperties', 'not', 'if', 'then', 'else', 'contains',
  'propertyNames', 'unevaluatedItems', 'unevaluatedProperties'] as const
/** Keywords whose value is a list of schemas. */
const LIST_KEYS = ['anyOf', 'allOf', 'oneOf', 'prefixItems', 'items'] as const
/** Keywords whose value maps names to schemas. */
const MAP_KEYS = ['properties', 'patternProperties', '$defs', 'definitions', 'dependentSchemas'] as const

function isObject (value: unknown): value is Record<PropertyKey, unknown> {
  return typeof value === 'object' && value !== null
}

/** A copy of `schema` that keeps its symbol and non-enumerable keys (TypeBox's `Kind`, typebox 1.x's `~kind`). */
function copyOf (schema: object): Record<PropertyKey, unknown> {
  return Object.create(Object.getPrototypeOf(schema) as object, Object.getOwnPropertyDescriptors(schema)) as Record<PropertyKey, unknown>
}

function isIntegerSchema (schema: Record<PropertyKey, unknown>): boolean {
  const type = schema.type
  return type === 'integer' || (Array.isArray(type) && type.includes('integer'))
}

function bounded (schema: Record<PropertyKey, unknown>): Record<PropertyKey, unknown> {
  let result = schema
  const set = (key: string, value: unknown): void => {
    if (result === schema) result = copyOf(schema)
    Object.defineProperty(result, key, { value, enumerable: true, writable: true, configurable: true })
  }
  if (isIntegerSchema(schema)) {
    const maximum = schema.maximum
    if (typeof maximum !== 'number' || maximum > Number.MAX_SAFE_INTEGER) set('maximum', Number.MAX_SAFE_INTEGER)
    const minimum = schema.minimum
    if (typeof minimum !== 'number' || minimum < Number.MIN_SAFE_INTEGER) set('minimum', Number.MIN_SAFE_INTEGER)
  }
  for (const key of SCHEMA_KEYS) {
    const inner = schema[key]
    if (isObject(inner) && !Array.isArray(inner)) {
      const next = bounded(inner)
      if (next !== inner) set(key, next)
    }
  }
  for (const key of LIST_KEYS) {
    const list = schema[key]
    if (!Array.isArray(list)) continue
    let copy: unknown[] | null = null
    for (let i = 0; i < list.length; i++) {
      const inner: unknown = list[i]
      if (!isObject(inner)) continue
      const next = bounded(inner)
      if (next !== inner) (copy ??= list.slice())[i] = next
    }
    if (copy !== null) set(key, copy)
  }
  for (const key of MAP_KEYS) {
    const map = schema[key]
    if (!isObject(map)) continue
    let copy: Record<PropertyKey, unknown> | null = null
    for (const name of Object.keys(map)) {
      const inner = map[name]
      if (!isObject(inner)) continue
      const next = bounded(inner)
      if (next !== inner) (copy ??= copyOf(map))[name] = next
    }
    if (copy !== null) set(key, copy)
  }
  return result
}

/** `schema`, or a copy of it whose integer schemas refuse numbers beyond ±Number.MAX_SAFE_INTEGER. */
export function withSafeIntegers<T extends object> (schema: T): T {
  return bounded(schema as Record<PropertyKey, unknown>) as T
}
