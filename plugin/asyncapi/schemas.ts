/**
 * Titled object schemas nested in a message's frame schema, moved to `components/schemas` and referred to
 * by `$ref`, as pydantic (and so Chanx's own documents) lays them out.
 *
 * Why: Chanx 2.10's `generate-client` makes a class of every titled schema with properties. A schema that
 * lives in `components/schemas` and is used by two channels goes to the package's `shared/messages.py`;
 * one nested inline goes to the module of each channel that uses it. A shared message whose payload was
 * titled inline therefore named a class that `shared/messages.py` never defines (`NameError:
 * AuthenticationPayload`). Once every class-making schema is a component, a shared message's parts are
 * shared too (the generator counts a component's channels through the `$ref`s), and each module defines
 * or imports every class it names.
 */
import type { Json, JsonObject } from './yaml'

/**
 * Names a schema title must not take: the generators' own unions of a channel's messages, the names the
 * generated modules import (`from typing import Any, Annotated, Literal`, `from pydantic import BaseModel,
 * Field`), and Python's capitalized keywords.
 */
export const RESERVED_TITLES = new Set([
  'IncomingMessage', 'OutgoingMessage', 'BaseMessage', 'BaseModel', 'Field', 'Any', 'Annotated', 'Literal', 'None', 'True', 'False'
])

/** `chat_message` → `ChatMessage`: schema titles become class names in Chanx's and chanx-js's generators. */
export function pascalOf (text: string): string {
  const words = text.split(/[^A-Za-z0-9]+/).filter((w) => w !== '')
  const name = words.map((w) => w[0]!.toUpperCase() + w.slice(1)).join('')
  return name === '' ? 'Unnamed' : /^[0-9]/.test(name) ? `M${name}` : name
}

/** Keywords whose value is one schema, a map of schemas, or a list of schemas (JSON Schema draft 7 and later). */
const ONE = ['additionalProperties', 'items', 'not', 'if', 'then', 'else', 'contains', 'propertyNames', 'unevaluatedProperties', 'unevaluatedItems']
// Not `$defs`/`definitions`: a `$ref` into them is relative to the schema's root, which hoisting would move.
const MAP = ['properties', 'patternProperties', 'dependentSchemas']
const LIST = ['anyOf', 'oneOf', 'allOf', 'prefixItems', 'items']

function isObject (value: Json | undefined): value is JsonObject {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

/** A schema the generators make a class of: a title and at least one property. */
function makesClass (schema: JsonObject): boolean {
  return typeof schema.title === 'string' && isObject(schema.properties) && Object.keys(schema.properties).length > 0
}

const same = (a: Json | undefined, b: Json): boolean => JSON.stringify(a) === JSON.stringify(b)

export interface Hoisted {
  /** The root schema with every nested class-making schema replaced by a `$ref`. */
  root: JsonObject
  /** The schemas to add to `components/schemas`, by name (its title). */
  added: Record<string, JsonObject>
}

/**
 * Hoists, without touching `schemas`: the caller stores `added` once it keeps `root`. Children go first, so
 * a hoisted schema's own nested classes are `$ref`s too. A name already taken by a different schema gets
 * `prefix` in front (the channel's name), then a number; the schema's title follows its name (the class name).
 */
export function hoistTitledSchemas (root: JsonObject, schemas: Readonly<Record<string, JsonObject>>, prefix: string): Hoisted {
  const added: Record<string, JsonObject> = {}
  const taken = (name: string): JsonObject | undefined => added[name] ?? schemas[name]

  const place = (schema: JsonObject): Json => {
    const base = pascalOf(schema.title as string)
    const titled = (name: string): JsonObject => ({ ...schema, title: name })
    const free = (name: string): boolean => !RESERVED_TITLES.has(name) && name !== root.title &&
      (taken(name) === undefined || same(taken(name), titled(name)))
    let name = base
    if (!free(name)) name = pascalOf(prefix) + base
    for (let n = 2; !free(name); n++) name = `${pascalOf(prefix)}${base}${n}`
    added[name] = titled(name)
    return { $ref: `#/components/schemas/${name}` }
  }

  const visit = (schema: JsonObject, nested: boolean): Json => {
    const out: JsonObject = { ...schema }
    for (const key of MAP) {
      const map = schema[key]
      if (!isObject(map)) continue
      const copy: JsonObject = {}
      for (const [name, child] of Object.entries(map)) copy[name] = isObject(child) ? visit(child, true) : child
      out[key] = copy
    }
    for (const key of ONE) if (isObject(schema[key])) out[key] = visit(schema[key], true)
    for (const key of LIST) {
      const list = schema[key]
      if (Array.isArray(list)) out[key] = list.map((child) => isObject(child) ? visit(child, true) : child)
    }
    return nested && makesClass(out) ? place(out) : out
  }

  return { root: visit(root, false) as JsonObject, added }
}
