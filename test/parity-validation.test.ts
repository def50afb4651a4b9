import { test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import websocket from '@fastify/websocket'
import { Type, type TSchema } from '@sinclair/typebox'
import chanx, { defineSocketRoute } from '../plugin'
import { closeApp } from '../plugin/testing'
import { AUTH_OK, open, type RawClient } from './helpers/router-client'

/** One action `m` with `schema`; its handler echoes the payload it received, so tests see what coercion made. */
async function echoApp (schema: TSchema, options: { strict?: boolean, routeStrict?: boolean } = {}): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(websocket)
  await app.register(chanx, options.strict === undefined ? {} : { strict: options.strict })
  app.route(defineSocketRoute({
    url: '/ws',
    messages: { m: schema },
    handlers: { m: (message) => ({ action: 'got', payload: message.payload }) },
    ...(options.routeStrict === undefined ? {} : { strict: options.routeStrict })
  }))
  await app.ready()
  return app
}

async function client (t: { teardown (fn: () => unknown): void, equal (a: unknown, b: unknown): unknown }, app: FastifyInstance): Promise<RawClient> {
  t.teardown(() => closeApp(app))
  const c = await open(app, '/ws')
  t.equal(await c.next(), AUTH_OK)
  return c
}

async function answer (c: RawClient, payload: unknown): Promise<unknown> {
  c.send(payload === undefined ? { action: 'm' } : { action: 'm', payload })
  return JSON.parse(await c.next())
}

const Count = Type.Object({ count: Type.Integer() })

test('a numeric string for an integer field is coerced to the number, as pydantic\'s lax mode does', async (t) => {
  const c = await client(t, await echoApp(Count))
  t.same(await answer(c, { count: '5' }), { action: 'got', payload: { count: 5 } })
  t.same(await answer(c, { count: ' +1_000.00 ' }), { action: 'got', payload: { count: 1000 } })
  t.same(await answer(c, { count: true }), { action: 'got', payload: { count: 1 } })
})

test('an unparsable string for an integer is int_parsing, a fractional number int_from_float', async (t) => {
  const c = await client(t, await echoApp(Count))
  t.same(await answer(c, { count: 'x' }), {
    action: 'error',
    payload: [{ type: 'int_parsing', loc: ['m', 'payload', 'count'], msg: 'Input should be a valid integer, unable to parse string as an integer' }]
  })
  t.same(await answer(c, { count: 1.5 }), {
    action: 'error',
    payload: [{ type: 'int_from_float', loc: ['m', 'payload', 'count'], msg: 'Input should be a valid integer, got a number with a fractional part' }]
  })
  t.same(await answer(c, { count: '1e3' }), {
    action: 'error',
    payload: [{ type: 'int_parsing', loc: ['m', 'payload', 'count'], msg: 'Input should be a valid integer, unable to parse string as an integer' }]
  })
  t.same(await answer(c, { count: null }), {
    action: 'error',
    payload: [{ type: 'int_type', loc: ['m', 'payload', 'count'], msg: 'Input should be a valid integer' }]
  })
})

test('strict: true (plugin or route) turns coercion off and answers pydantic\'s strict int_type', async (t) => {
  const strictError = { action: 'error', payload: [{ type: 'int_type', loc: ['m', 'payload', 'count'], msg: 'Input should be a valid integer' }] }
  const plugin = await client(t, await echoApp(Count, { strict: true }))
  t.same(await answer(plugin, { count: '5' }), strictError)
  const route = await client(t, await echoApp(Count, { routeStrict: true }))
  t.same(await answer(route, { count: '5' }), strictError)
  const overridden = await client(t, await echoApp(Count, { strict: true, routeStrict: false }))
  t.same(await answer(overridden, { count: '5' }), { action: 'got', payload: { count: 5 } })
})

test('booleans take pydantic\'s words and 0/1; anything else is bool_parsing', async (t) => {
  const c = await client(t, await echoApp(Type.Object({ on: Type.Boolean() })))
  for (const [input, output] of [['true', true], ['FALSE', false], ['yes', true], ['off', false], ['t', true], ['n', false], [1, true], [0, false], ['1', true]] as const) {
    t.same(await answer(c, { on: input }), { action: 'got', payload: { on: output } }, `${JSON.stringify(input)} is ${String(output)}`)
  }
  t.same(await answer(c, { on: 'maybe' }), {
    action: 'error',
    payload: [{ type: 'bool_parsing', loc: ['m', 'payload', 'on'], msg: 'Input should be a valid boolean, unable to interpret input' }]
  })
  t.same(await answer(c, { on: 2 }), {
    action: 'error',
    payload: [{ type: 'bool_parsing', loc: ['m', 'payload', 'on'], msg: 'Input should be a valid boolean, unable to interpret input' }]
  })
  t.same(await answer(c, { on: [] }), {
    action: 'error',
    payload: [{ type: 'bool_type', loc: ['m', 'payload', 'on'], msg: 'Input should be a valid boolean' }]
  })
})

test('numbers take numeric strings; a number is never turned into a string (pydantic\'s coerce_numbers_to_str is off)', async (t) => {
  const c = await client(t, await echoApp(Type.Object({ x: Type.Number(), s: Type.String() })))
  t.same(await answer(c, { x: '2.5e1', s: 'a' }), { action: 'got', payload: { x: 25, s: 'a' } })
  t.same(await answer(c, { x: 'abc', s: 5 }), {
    action: 'error',
    payload: [
      { type: 'float_parsing', loc: ['m', 'payload', 'x'], msg: 'Input should be a valid number, unable to parse string as a number' },
      { type: 'string_type', loc: ['m', 'payload', 's'], msg: 'Input should be a valid string' }
    ]
  })
})

test('nested objects, arrays, records and optional fields are coerced too; the handler gets the coerced value', async (t) => {
  const schema = Type.Object({
    items: Type.Array(Type.Object({ id: Type.Integer(), done: Type.Optional(Type.Boolean()) })),
    scores: Type.Record(Type.String(), Type.Number()),
    pair: Type.Tuple([Type.Integer(), Type.String()])
  })
  const c = await client(t, await echoApp(schema))
  t.same(await answer(c, { items: [{ id: '1' }, { id: 2, done: 'yes' }], scores: { a: '1.5' }, pair: ['7', 'x'] }), {
    action: 'got',
    payload: { items: [{ id: 1 }, { id: 2, done: true }], scores: { a: 1.5 }, pair: [7, 'x'] }
  })
})

test('a union takes a member that matches as is first, else the first that matches after coercion', async (t) => {
  const c = await client(t, await echoApp(Type.Object({ v: Type.Union([Type.Integer(), Type.String()]), n: Type.Union([Type.Null(), Type.Integer()]) })))
  t.same(await answer(c, { v: '5', n: '3' }), { action: 'got', payload: { v: '5', n: 3 } })
  t.same(await answer(c, { v: true, n: null }), { action: 'got', payload: { v: 1, n: null } })
})

test('a constraint is checked on the coerced value and reported in pydantic\'s words', async (t) => {
  const c = await client(t, await echoApp(Type.Object({ n: Type.Integer({ minimum: 5 }) })))
  t.same(await answer(c, { n: '3' }), {
    action: 'error',
    payload: [{ type: 'greater_than_equal', loc: ['m', 'payload', 'n'], msg: 'Input should be greater than or equal to 5' }]
  })
})

test('an absent payload where one is required is missing at [action, "payload"]; a null schema takes it as null', async (t) => {
  const c = await client(t, await echoApp(Count))
  t.same(await answer(c, undefined), { action: 'error', payload: [{ type: 'missing', loc: ['m', 'payload'], msg: 'Field required' }] })
  const n = await client(t, await echoApp(Type.Null()))
  t.same(await answer(n, undefined), { action: 'got', payload: null })
})

test('every error type speaks pydantic\'s vocabulary and English', async (t) => {
  const schema = Type.Object({
    s: Type.Optional(Type.String({ minLength: 2, maxLength: 3, pattern: '^[a-z]+$' })),
    short: Type.Optional(Type.String({ minLength: 2 })),
    long: Type.Optional(Type.String({ maxLength: 1 })),
    list: Type.Optional(Type.Array(Type.Integer(), { minItems: 2 })),
    many: Type.Optional(Type.Array(Type.Integer(), { maxItems: 1 })),
    gt: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
    lt: Type.Optional(Type.Number({ exclusiveMaximum: 10 })),
    le: Type.Optional(Type.Integer({ maximum: 10 })),
    mul: Type.Optional(Type.Integer({ multipleOf: 3 })),
    lit: Type.Optional(Type.Literal('a')),
    lits: Type.Optional(Type.Union([Type.Literal('a'), Type.Literal('b'), Type.Literal(3)])),
    none: Type.Optional(Type.Null()),
    arr: Type.Optional(Type.Array(Type.String())),
    model: Type.Optional(Type.Object({ x: Type.Integer() }, { title: 'Point' })),
    dict: Type.Optional(Type.Object({ x: Type.Integer() })),
    either: Type.Optional(Type.Union([Type.Integer(), Type.Boolean()]))
  }, { additionalProperties: false })
  const c = await client(t, await echoApp(schema))
  const reply = await answer(c, {
    s: 'ABCD', short: 'a', long: 'ab', list: [1], many: [1, 2], gt: 0, lt: 10, le: 11, mul: 4, lit: 'b', lits: 'c', none: 1, arr: 'x', model: 1, dict: 1, either: [], extra: 1
  }) as { payload: { type: string, loc: unknown[], msg: string }[] }
  t.same(reply.payload, [
    // TypeBox reports unknown keys before the fields (pydantic after them): the README says the order may differ.
    { type: 'extra_forbidden', loc: ['m', 'payload', 'extra'], msg: 'Extra inputs are not permitted' },
    { type: 'string_too_long', loc: ['m', 'payload', 's'], msg: 'String should have at most 3 characters' },
    { type: 'string_too_short', loc: ['m', 'payload', 'short'], msg: 'String should have at least 2 characters' },
    { type: 'string_too_long', loc: ['m', 'payload', 'long'], msg: 'String should have at most 1 character' },
    { type: 'too_short', loc: ['m', 'payload', 'list'], msg: 'List should have at least 2 items after validation, not 1' },
    { type: 'too_long', loc: ['m', 'payload', 'many'], msg: 'List should have at most 1 item after validation, not 2' },
    { type: 'greater_than', loc: ['m', 'payload', 'gt'], msg: 'Input should be greater than 0' },
    { type: 'less_than', loc: ['m', 'payload', 'lt'], msg: 'Input should be less than 10' },
    { type: 'less_than_equal', loc: ['m', 'payload', 'le'], msg: 'Input should be less than or equal to 10' },
    { type: 'multiple_of', loc: ['m', 'payload', 'mul'], msg: 'Input should be a multiple of 3' },
    { type: 'literal_error', loc: ['m', 'payload', 'lit'], msg: "Input should be 'a'" },
    { type: 'literal_error', loc: ['m', 'payload', 'lits'], msg: "Input should be 'a', 'b' or 3" },
    { type: 'none_required', loc: ['m', 'payload', 'none'], msg: 'Input should be None' },
    { type: 'list_type', loc: ['m', 'payload', 'arr'], msg: 'Input should be a valid list' },
    { type: 'model_type', loc: ['m', 'payload', 'model'], msg: 'Input should be a valid dictionary or instance of Point' },
    { type: 'dict_type', loc: ['m', 'payload', 'dict'], msg: 'Input should be a valid dictionary' },
    { type: 'int_type', loc: ['m', 'payload', 'either', 'int'], msg: 'Input should be a valid integer' },
    { type: 'bool_type', loc: ['m', 'payload', 'either', 'bool'], msg: 'Input should be a valid boolean' }
  ])
  t.same((await answer(c, { s: '12' }) as typeof reply).payload, [
    { type: 'string_pattern_mismatch', loc: ['m', 'payload', 's'], msg: "String should match pattern '^[a-z]+$'" }
  ])
})

test('an enum of numbers takes numeric strings; a failed enum is the enum type', async (t) => {
  enum Level { Low = 1, High = 2 }
  enum Color { Red = 'red', Blue = 'blue' }
  const c = await client(t, await echoApp(Type.Object({ level: Type.Enum(Level), color: Type.Enum(Color) })))
  t.same(await answer(c, { level: '2', color: 'red' }), { action: 'got', payload: { level: 2, color: 'red' } })
  t.same(await answer(c, { level: 3, color: 'RED' }), {
    action: 'error',
    payload: [
      { type: 'enum', loc: ['m', 'payload', 'level'], msg: 'Input should be 1 or 2' },
      { type: 'enum', loc: ['m', 'payload', 'color'], msg: "Input should be 'red' or 'blue'" }
    ]
  })
})

test('strict given something other than a boolean fails registration, naming the option', async (t) => {
  const app = Fastify()
  t.teardown(() => closeApp(app))
  await app.register(websocket)
  await t.rejects(async () => { await app.register(chanx, { strict: 'yes' as unknown as boolean }) }, /option strict/)
})
