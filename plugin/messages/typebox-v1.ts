/**
 * Schemas of the `typebox` 1.x line (what @fastify/type-provider-typebox 6 uses), compiled by its own
 * compiler. `typebox` is an optional peer dependency: it is loaded only when a route declares such a
 * schema, so an app that uses only `@sinclair/typebox` never needs it installed.
 */
import { ValueErrorType } from '@sinclair/typebox/errors'
import type { TLocalizedValidationError } from 'typebox/error' with { 'resolution-mode': 'import' }
import { InvalidOptionError } from '../core/errors'

type CompileModule = typeof import('typebox/compile', { with: { 'resolution-mode': 'import' } })

/** One failed constraint, in `@sinclair/typebox`'s terms: the router maps both lines' errors from these. */
export interface SchemaIssue {
  readonly type: ValueErrorType | -1
  readonly path: string
  readonly message: string
}

/** A compiled payload check of either line: `Check` on every frame, `Errors` only once a check failed. */
export interface SchemaCheck {
  Check (value: unknown): boolean
  Errors (value: unknown): Iterable<SchemaIssue>
}

/** A `typebox` 1.x schema names its kind in a non-enumerable `~kind`. */
export function isTypeBoxV1Schema (schema: unknown): boolean {
  return typeof schema === 'object' && schema !== null && typeof (schema as { '~kind'?: unknown })['~kind'] === 'string'
}

let compiler: CompileModule | undefined

function loadCompiler (where: string): CompileModule {
  if (compiler === undefined) {
    try {
      // typebox 1.x is ESM only: require() of ESM needs Node.js 20.19+ or 22.12+.
      compiler = require('typebox/compile') as CompileModule
    } catch (err) {
      if ((err as { code?: unknown }).code === 'ERR_REQUIRE_ESM') {
        throw new InvalidOptionError(`${where} is a typebox 1.x schema, which needs Node.js 20.19+ or 22.12+ (require of ES modules)`)
      }
      throw new InvalidOptionError(`${where} is a typebox 1.x schema, but the typebox package cannot be loaded: ${(err as Error).message}`)
    }
  }
  return compiler
}

/** typebox 1.x reports JSON Schema keywords; each maps to the `ValueErrorType` whose name the error list uses. */
const KEYWORD_TYPES: Readonly<Record<string, ValueErrorType>> = {
  additionalProperties: ValueErrorType.ObjectAdditionalProperties,
  anyOf: ValueErrorType.Union,
  boolean: ValueErrorType.Never,
  oneOf: ValueErrorType.Union,
  enum: ValueErrorType.Union,
  const: ValueErrorType.Literal,
  contains: ValueErrorType.ArrayContains,
  exclusiveMaximum: ValueErrorType.NumberExclusiveMaximum,
  exclusiveMinimum: ValueErrorType.NumberExclusiveMinimum,
  format: ValueErrorType.StringFormat,
  maximum: ValueErrorType.NumberMaximum,
  minimum: ValueErrorType.NumberMinimum,
  maxItems: ValueErrorType.ArrayMaxItems,
  minItems: ValueErrorType.ArrayMinItems,
  maxLength: ValueErrorType.StringMaxLength,
  minLength: ValueErrorType.StringMinLength,
  maxProperties: ValueErrorType.ObjectMaxProperties,
  minProperties: ValueErrorType.ObjectMinProperties,
  multipleOf: ValueErrorType.NumberMultipleOf,
  not: ValueErrorType.Not,
  pattern: ValueErrorType.StringPattern,
  required: ValueErrorType.ObjectRequiredProperty,
  uniqueItems: ValueErrorType.ArrayUniqueItems
}

const TYPE_TYPES: Readonly<Record<string, ValueErrorType>> = {
  array: ValueErrorType.Array,
  boolean: ValueErrorType.Boolean,
  integer: ValueErrorType.Integer,
  null: ValueErrorType.Null,
  number: ValueErrorType.Number,
  object: ValueErrorType.Object,
  string: ValueErrorType.String
}

function pointer (path: string, name: string): string {
  return path + '/' + name.replace(/~/g, '~0').replace(/\//g, '~1')
}

/**
 * Yields a 1.x error as `SchemaIssue`s. A missing or extra property is reported, as by `@sinclair/typebox`,
 * at the property's own path, one issue per property, so its `loc` names the field.
 */
function * issuesOf (errors: readonly TLocalizedValidationError[]): Generator<SchemaIssue> {
  for (const error of errors) {
    // An extra property fails `additionalProperties: false` twice: as a false schema and as the keyword.
    if (error.keyword === 'boolean' && error.schemaPath.endsWith('/additionalProperties')) continue
    if (error.keyword === 'required') {
      for (const name of error.params.requiredProperties) {
        yield { type: ValueErrorType.ObjectRequiredProperty, path: pointer(error.instancePath, name), message: error.message }
      }
    } else if (error.keyword === 'additionalProperties') {
      for (const name of error.params.additionalProperties) {
        yield { type: ValueErrorType.ObjectAdditionalProperties, path: pointer(error.instancePath, name), message: error.message }
      }
    } else {
      const type = error.keyword === 'type'
        ? (typeof error.params.type === 'string' ? TYPE_TYPES[error.params.type] : undefined)
        : KEYWORD_TYPES[error.keyword]
      yield { type: type ?? -1, path: error.instancePath, message: error.message }
    }
  }
}

/** Compiles a typebox 1.x schema once; its check runs per frame and its errors are mapped only on failure. */
export function compileTypeBoxV1 (schema: object, where: string): SchemaCheck {
  const validator = loadCompiler(where).Compile(schema)
  return {
    Check: (value) => validator.Check(value),
    Errors: (value) => issuesOf(validator.Errors(value))
  }
}
