import { ValueErrorType } from '@sinclair/typebox/errors'
import type { SchemaCheck } from './typebox-v1'
import type { MessageError } from './types'

/** Chanx's error lists for frames that fail: pydantic's `type`/`loc`/`msg` entries, built only on failure. */

/** A schema failure answers at most this many errors: a hostile frame must not buy a huge reply. */
const MAX_ERRORS = 20
/** Longest action quoted back in an error. */
const MAX_TAG_LENGTH = 100



/** Each `ValueErrorType`'s name in the error list: pydantic's where one matches, so Chanx clients read them. */
const ERROR_TYPES: string[] = []
for (const [name, value] of Object.entries(ValueErrorType)) {
  if (typeof value === 'number') ERROR_TYPES[value] = name.replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase()
}
Object.assign(ERROR_TYPES, {
  [ValueErrorType.ObjectRequiredProperty]: 'missing',
  [ValueErrorType.ObjectAdditionalProperties]: 'extra_forbidden',
  [ValueErrorType.Object]: 'model_type',
  [ValueErrorType.String]: 'string_type',
  [ValueErrorType.StringMinLength]: 'string_too_short',
  [ValueErrorType.StringMaxLength]: 'string_too_long',
  [ValueErrorType.StringPattern]: 'string_pattern_mismatch',
  [ValueErrorType.Number]: 'float_type',
  [ValueErrorType.Integer]: 'int_type',
  [ValueErrorType.Boolean]: 'bool_type',
  [ValueErrorType.Null]: 'none_required',
  [ValueErrorType.Array]: 'list_type',
  [ValueErrorType.ArrayMinItems]: 'too_short',
  [ValueErrorType.ArrayMaxItems]: 'too_long',
  [ValueErrorType.Literal]: 'literal_error',
  [ValueErrorType.NumberMinimum]: 'greater_than_equal',
  [ValueErrorType.IntegerMinimum]: 'greater_than_equal',
  [ValueErrorType.NumberMaximum]: 'less_than_equal',
  [ValueErrorType.IntegerMaximum]: 'less_than_equal',
  [ValueErrorType.NumberExclusiveMinimum]: 'greater_than',
  [ValueErrorType.IntegerExclusiveMinimum]: 'greater_than',
  [ValueErrorType.NumberExclusiveMaximum]: 'less_than',
  [ValueErrorType.IntegerExclusiveMaximum]: 'less_than',
  [ValueErrorType.NumberMultipleOf]: 'multiple_of',
  [ValueErrorType.IntegerMultipleOf]: 'multiple_of'
})


function locOf (action: string, path: string): (string | number)[] {
  const loc: (string | number)[] = [action, 'payload']
  if (path === '') return loc
  for (const raw of path.slice(1).split('/')) {
    const segment = raw.replace(/~1/g, '/').replace(/~0/g, '~')
    loc.push(/^(0|[1-9]\d{0,8})$/.test(segment) ? Number(segment) : segment)
  }
  return loc
}

/** Maps a failed check's errors, lazily and at most `MAX_ERRORS` of them, one per path. */
export function schemaErrors (check: SchemaCheck, action: string, payload: unknown): MessageError[] {
  const errors: MessageError[] = []
  let lastPath: string | undefined
  for (const error of check.Errors(payload)) {
    if (error.path === lastPath) continue
    lastPath = error.path
    errors.push({ type: ERROR_TYPES[error.type] ?? 'value_error', loc: locOf(action, error.path), msg: error.message })
    if (errors.length === MAX_ERRORS) break
  }
  return errors
}

export function quoteTag (tag: unknown): string {
  // Never String(tag): a parsed object such as {"toString":1} makes it throw, inside a 'message' listener.
  const text = typeof tag === 'string' ? tag : (JSON.stringify(tag) ?? 'null')
  return text.length > MAX_TAG_LENGTH ? text.slice(0, MAX_TAG_LENGTH) + '…' : text
}
