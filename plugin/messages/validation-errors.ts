import { Hint, Kind, type TSchema } from '@sinclair/typebox'
import type { TypeCheck } from '@sinclair/typebox/compiler'
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors'
import type { Coercer } from './coerce'
import type { SchemaCheck, SchemaIssue } from './typebox-v1'
import type { MessageError } from './types'

/**
 * Chanx's error lists for frames that fail: pydantic's `type`/`loc`/`msg` entries, in pydantic-core's
 * vocabulary and English (`src/errors/types.rs`), built only on failure. The README's error-type table
 * lists every `type` here beside its pydantic counterpart.
 */

/** A schema failure answers at most this many errors: a hostile frame must not buy a huge reply. */
const MAX_ERRORS = 20
/** Longest action quoted back in an error. */
const MAX_TAG_LENGTH = 100

/** One rule: the pydantic `type` and `msg` of a TypeBox error. `lax` is true unless the route is strict. */
export type ErrorRule = (error: ValueError, lax: boolean) => readonly [type: string, msg: string]

const plural = (n: unknown): string => (n === 1 ? '' : 's')
const lengthOf = (value: unknown): number => (Array.isArray(value) || typeof value === 'string' ? value.length : 0)

/** Python's repr of a literal, as pydantic quotes expected values: `'a'`, `5`, `True`, `None`. */
export function pythonRepr (value: unknown): string {
  if (typeof value === 'string') return `'${value}'`
  if (value === true) return 'True'
  if (value === false) return 'False'
  if (value === null) return 'None'
  return String(value)
}

/** pydantic's list of expected values: `'a'`, `'a' or 'b'`, `'a', 'b' or 'c'`. */
function expected (values: readonly unknown[]): string {
  const reprs = values.map(pythonRepr)
  if (reprs.length <= 1) return reprs.join('')
  return `${reprs.slice(0, -1).join(', ')} or ${reprs[reprs.length - 1] as string}`
}

const integerType: ErrorRule = (error, lax) => {
  if (lax && typeof error.value === 'string') return ['int_parsing', 'Input should be a valid integer, unable to parse string as an integer']
  if (lax && typeof error.value === 'number' && Number.isFinite(error.value)) {
    return ['int_from_float', 'Input should be a valid integer, got a number with a fractional part']
  }
  return ['int_type', 'Input should be a valid integer']
}
const numberType: ErrorRule = (error, lax) => lax && typeof error.value === 'string'
  ? ['float_parsing', 'Input should be a valid number, unable to parse string as a number']
  : ['float_type', 'Input should be a valid number']
const booleanType: ErrorRule = (error, lax) => lax && (typeof error.value === 'string' || typeof error.value === 'number')
  ? ['bool_parsing', 'Input should be a valid boolean, unable to interpret input']
  : ['bool_type', 'Input should be a valid boolean']
/** A titled TypeBox object stands for a pydantic model (named by its title); an untitled one for a TypedDict. */
const objectType: ErrorRule = (error) => typeof error.schema.title === 'string'
  ? ['model_type', `Input should be a valid dictionary or instance of ${error.schema.title}`]
  : ['dict_type', 'Input should be a valid dictionary']
const min = (word: string, key: string): ErrorRule => (error) => [word, `Input should be greater than${key === 'minimum' ? ' or equal to' : ''} ${String(error.schema[key])}`]
const max = (word: string, key: string): ErrorRule => (error) => [word, `Input should be less than${key === 'maximum' ? ' or equal to' : ''} ${String(error.schema[key])}`]
const multipleOf: ErrorRule = (error) => ['multiple_of', `Input should be a multiple of ${String(error.schema.multipleOf)}`]

/**
 * The table: one rule per TypeBox error type that pydantic has a name for. Extend it (a `typebox` 1.x
 * error kind, say) by adding rows; a type without a row is reported as TypeBox names it, snake_cased.
 */
export const ERROR_RULES: Partial<Record<ValueErrorType, ErrorRule>> = {
  [ValueErrorType.String]: () => ['string_type', 'Input should be a valid string'],
  [ValueErrorType.StringMinLength]: (e) => ['string_too_short', `String should have at least ${String(e.schema.minLength)} character${plural(e.schema.minLength)}`],
  [ValueErrorType.StringMaxLength]: (e) => ['string_too_long', `String should have at most ${String(e.schema.maxLength)} character${plural(e.schema.maxLength)}`],
  [ValueErrorType.StringPattern]: (e) => ['string_pattern_mismatch', `String should match pattern '${String(e.schema.pattern)}'`],
  [ValueErrorType.Integer]: integerType,
  [ValueErrorType.Number]: numberType,
  [ValueErrorType.Boolean]: booleanType,
  [ValueErrorType.Null]: () => ['none_required', 'Input should be None'],
  [ValueErrorType.Object]: objectType,
  [ValueErrorType.ObjectRequiredProperty]: () => ['missing', 'Field required'],
  [ValueErrorType.ObjectAdditionalProperties]: () => ['extra_forbidden', 'Extra inputs are not permitted'],
  [ValueErrorType.Array]: () => ['list_type', 'Input should be a valid list'],
  [ValueErrorType.Tuple]: () => ['tuple_type', 'Input should be a valid tuple'],
  [ValueErrorType.ArrayMinItems]: (e) => ['too_short', `List should have at least ${String(e.schema.minItems)} item${plural(e.schema.minItems)} after validation, not ${lengthOf(e.value)}`],
  [ValueErrorType.ArrayMaxItems]: (e) => ['too_long', `List should have at most ${String(e.schema.maxItems)} item${plural(e.schema.maxItems)} after validation, not ${lengthOf(e.value)}`],
  [ValueErrorType.Literal]: (e) => ['literal_error', `Input should be ${pythonRepr(e.schema.const)}`],
  [ValueErrorType.NumberMinimum]: min('greater_than_equal', 'minimum'),
  [ValueErrorType.IntegerMinimum]: min('greater_than_equal', 'minimum'),
  [ValueErrorType.NumberExclusiveMinimum]: min('greater_than', 'exclusiveMinimum'),
  [ValueErrorType.IntegerExclusiveMinimum]: min('greater_than', 'exclusiveMinimum'),
  [ValueErrorType.NumberMaximum]: max('less_than_equal', 'maximum'),
  [ValueErrorType.IntegerMaximum]: max('less_than_equal', 'maximum'),
  [ValueErrorType.NumberExclusiveMaximum]: max('less_than', 'exclusiveMaximum'),
  [ValueErrorType.IntegerExclusiveMaximum]: max('less_than', 'exclusiveMaximum'),
  [ValueErrorType.NumberMultipleOf]: multipleOf,
  [ValueErrorType.IntegerMultipleOf]: multipleOf
}

/** TypeBox's own name, snake_cased, for error types without a rule (`string_format`, `object_min_properties`). */
const FALLBACK_TYPES: string[] = []
for (const [name, value] of Object.entries(ValueErrorType)) {
  if (typeof value === 'number') FALLBACK_TYPES[value] = name.replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase()
}

/**
 * The pydantic `type` of a typebox 1.x issue. Its errors carry no schema or value, so the rule runs on an
 * empty schema for the name alone; the `msg` stays typebox's own English (a documented gap).
 */
function issueType (issue: SchemaIssue): string {
  const rule = issue.type === -1 ? undefined : ERROR_RULES[issue.type]
  if (rule === undefined) return FALLBACK_TYPES[issue.type] ?? 'value_error'
  return rule({ type: issue.type, path: issue.path, message: issue.message, schema: {}, value: undefined, errors: [] } as unknown as ValueError, false)[0]
}

/** How pydantic names a union member in `loc`: `int`, `str`, a model's title, `list[int]`, `literal['a']`. */
export function memberLabel (schema: TSchema): string {
  if (typeof schema.title === 'string') return schema.title
  switch (schema[Kind]) {
    case 'Integer': return 'int'
    case 'Number': return 'float'
    case 'String': return 'str'
    case 'Boolean': return 'bool'
    case 'Null': return 'none'
    case 'Literal': return `literal[${pythonRepr(schema.const)}]`
    case 'Array': return `list[${memberLabel(schema.items as TSchema)}]`
    case 'Object': return 'typed-dict'
    case 'Record': return 'dict[str,any]'
    default: return 'any'
  }
}

class ErrorList {
  readonly errors: MessageError[] = []
  constructor (readonly action: string, readonly lax: boolean) {}

  get full (): boolean {
    return this.errors.length >= MAX_ERRORS
  }

  /** Adds the errors of one iterator; `labels` are union members inserted into `loc` after `depth` path segments. */
  add (iterable: Iterable<ValueError | SchemaIssue>, labels: readonly (readonly [depth: number, label: string])[]): void {
    let lastPath: string | undefined
    for (const error of iterable) {
      if (this.full) return
      if (error.path === lastPath) continue
      lastPath = error.path
      if (!('schema' in error)) {
        this.errors.push({ type: issueType(error), loc: locOf(this.action, error.path, labels), msg: error.message })
        continue
      }
      if (error.type === ValueErrorType.Union) {
        this.union(error, labels)
        continue
      }
      const rule = ERROR_RULES[error.type]
      const [type, msg] = rule === undefined ? [FALLBACK_TYPES[error.type] ?? 'value_error', error.message] : rule(error, this.lax)
      this.errors.push({ type, loc: locOf(this.action, error.path, labels), msg })
    }
  }

  /**
   * A union no member took: literals and enums answer as one `literal_error`/`enum`; `X | null` answers X's
   * errors (pydantic's nullable); any other union answers each member's errors, its label in `loc`.
   */
  union (error: ValueError, labels: readonly (readonly [number, string])[]): void {
    const members = (error.schema.anyOf ?? []) as TSchema[]
    if (members.length > 0 && members.every((member) => member[Kind] === 'Literal')) {
      const values = members.map((member) => member.const as unknown)
      const type = error.schema[Hint] === 'Enum' ? 'enum' : 'literal_error'
      this.errors.push({ type, loc: locOf(this.action, error.path, labels), msg: `Input should be ${expected(values)}` })
      return
    }
    const others = members.filter((member) => member[Kind] !== 'Null')
    if (others.length === 1 && members.length === 2 && error.value !== null) {
      this.add(error.errors[members.indexOf(others[0] as TSchema)] as Iterable<ValueError>, labels)
      return
    }
    const depth = error.path === '' ? 0 : error.path.split('/').length - 1
    for (let i = 0; i < members.length && !this.full; i++) {
      this.add(error.errors[i] as Iterable<ValueError>, [...labels, [depth, memberLabel(members[i] as TSchema)]])
    }
  }
}

function locOf (action: string, path: string, labels: readonly (readonly [number, string])[]): (string | number)[] {
  const loc: (string | number)[] = [action, 'payload']
  const segments = path === '' ? [] : path.slice(1).split('/')
  let label = 0
  for (let i = 0; i <= segments.length; i++) {
    while (label < labels.length && (labels[label] as readonly [number, string])[0] === i) loc.push((labels[label++] as readonly [number, string])[1])
    if (i === segments.length) break
    const segment = (segments[i] as string).replace(/~1/g, '/').replace(/~0/g, '~')
    loc.push(/^(0|[1-9]\d{0,8})$/.test(segment) ? Number(segment) : segment)
  }
  return loc
}

/** Maps a failed check's errors, lazily and at most `MAX_ERRORS` of them, one per path. */
export function schemaErrors (check: TypeCheck<TSchema> | SchemaCheck, action: string, payload: unknown, lax = false): MessageError[] {
  const list = new ErrorList(action, lax)
  list.add(check.Errors(payload), [])
  return list.errors
}

/** What `admitPayload` needs of a compiled action. */
export interface CheckedAction {
  readonly name: string
  readonly check: TypeCheck<TSchema> | SchemaCheck
  /** pydantic's lax conversions for this action; `null` when the route is strict or nothing converts. */
  readonly coerce: Coercer | null
  /** False on `strict` routes: error types are then pydantic's strict ones (`int_type` for `"5"`). */
  readonly lax: boolean
}

/**
 * Called only for a frame whose payload failed the action's check. Converts it as pydantic's lax mode
 * would and, when that makes it valid, stores the converted payload on the message and returns `null`;
 * otherwise returns the JSON text of the error list. An absent payload is `null` when the schema takes
 * `null`, and pydantic's `missing` when it does not.
 */
export function admitPayload (action: CheckedAction, message: Record<string, unknown>): string | null {
  const payload = message.payload
  if (payload === undefined) {
    if (action.check.Check(null)) {
      message.payload = null
      return null
    }
    return JSON.stringify([{ type: 'missing', loc: [action.name, 'payload'], msg: 'Field required' }])
  }
  let value: unknown = payload
  if (action.coerce !== null) {
    value = action.coerce(payload)
    if (value !== payload && action.check.Check(value)) {
      message.payload = value
      return null
    }
  }
  return JSON.stringify(schemaErrors(action.check, action.name, value, action.lax))
}

export function quoteTag (tag: unknown): string {
  // Never String(tag): a parsed object such as {"toString":1} makes it throw, inside a 'message' listener.
  const text = typeof tag === 'string' ? tag : (JSON.stringify(tag) ?? 'null')
  return text.length > MAX_TAG_LENGTH ? text.slice(0, MAX_TAG_LENGTH) + '…' : text
}
