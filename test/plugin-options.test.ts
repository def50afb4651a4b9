import { test } from 'tap'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import chanx from '../plugin'
import { pluginRegistrationError } from './helpers/registration'

/** Plugin options that fail registration: each error is FST_CHANX_INVALID_OPTION and names the option and its shape. */

test('connection limits must be whole numbers, 0 or more', async (t) => {
  for (const option of ['maxBufferedBytes', 'maxConnectionsPerUser', 'maxConnectionsPerIp']) {
    for (const value of [-1, 1.5, '10', null]) {
      const err = await pluginRegistrationError({ [option]: value })
      t.equal(err.code, 'FST_CHANX_INVALID_OPTION', `${option}: ${JSON.stringify(value)}`)
      t.equal(err.message, `fastify-chanx: option ${option} must be a whole number, 0 or more (0 turns it off)`)
    }
  }
})

test('redactQueryParams must be an array of non-empty names', async (t) => {
  for (const value of ['token', [''], ['ok', 3], {}]) {
    const err = await pluginRegistrationError({ redactQueryParams: value })
    t.equal(err.code, 'FST_CHANX_INVALID_OPTION', JSON.stringify(value))
    t.equal(err.message, 'fastify-chanx: option redactQueryParams must be an array of query parameter names')
  }
})

test('userKey must be a function', async (t) => {
  const err = await pluginRegistrationError({ userKey: 'id' })
  t.equal(err.code, 'FST_CHANX_INVALID_OPTION')
  t.equal(err.message, 'fastify-chanx: option userKey must be a function (user) => string | null')
})

test('accepted limits and names register, and 0 is allowed', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(websocket)
  await app.register(chanx, { maxBufferedBytes: 0, maxConnectionsPerUser: 3, maxConnectionsPerIp: 0, redactQueryParams: ['sig'], userKey: () => null })
  await app.ready()
  t.pass('registered')
})

test('allowedOrigins must be an array of origin strings or a function, on the plugin and on a route', async (t) => {
  const shape = 'must be an array of origins (e.g. "https://app.example.com", or "*") or a function (origin, request) => boolean'
  for (const value of ['https://app.example.com', [42], {}]) {
    const err = await pluginRegistrationError({ allowedOrigins: value })
    t.equal(err.code, 'FST_CHANX_INVALID_OPTION', JSON.stringify(value))
    t.equal(err.message, `fastify-chanx: option allowedOrigins ${shape}`)
  }
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(websocket)
  await app.register(chanx)
  t.throws(() => app.get('/ws', { websocket: true, allowedOrigins: 'https://app.example.com' } as never, () => {}), {
    code: 'FST_CHANX_INVALID_OPTION',
    message: `fastify-chanx: route GET /ws: allowedOrigins ${shape}`
  })
})
