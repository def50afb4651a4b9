import { test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import websocket from '@fastify/websocket'
import chanx, { NotFound } from '../plugin'
import { closeApp } from '../plugin/testing'
import { open } from './helpers/router-client'

async function roomApp (route: Record<string, unknown>): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(websocket)
  await app.register(chanx)
  app.get('/ws/rooms/:room', { websocket: true, ...route }, () => {})
  await app.ready()
  return app
}

const refusal = (detail: string): string =>
  `{"action":"authentication","payload":{"status_code":404,"status_text":"Not Found","data":{"detail":"${detail}"}}}`

test('a missing object answers DRF\'s "Not found." by default, with 4404', async (t) => {
  const app = await roomApp({ objectLoader: () => null })
  t.teardown(() => closeApp(app))
  const client = await open(app, '/ws/rooms/x')
  t.equal(await client.next(), refusal('Not found.'))
  t.equal(await client.closed(), 4404)
})

test('a route with objectName answers Django\'s "No Room matches the given query." as Chanx does', async (t) => {
  const app = await roomApp({ objectLoader: () => undefined, objectName: 'Room' })
  t.teardown(() => closeApp(app))
  const client = await open(app, '/ws/rooms/x')
  t.equal(await client.next(), refusal('No Room matches the given query.'))
  t.equal(await client.closed(), 4404)
})

test('an objectLoader that throws NotFound(detail) answers that detail with 404', async (t) => {
  const app = await roomApp({ objectLoader: () => { throw new NotFound('Room 7 is archived.') }, objectName: 'Room' })
  t.teardown(() => closeApp(app))
  const client = await open(app, '/ws/rooms/x')
  t.equal(await client.next(), refusal('Room 7 is archived.'))
  t.equal(await client.closed(), 4404)
})

test('objectName on a plain HTTP route answers {"detail": "No Room matches the given query."} with 404', async (t) => {
  const app = Fastify()
  t.teardown(() => closeApp(app))
  await app.register(websocket)
  await app.register(chanx)
  app.get('/rooms/:room', { objectLoader: () => null, objectName: 'Room' }, async () => 'found')
  const reply = await app.inject('/rooms/x')
  t.equal(reply.statusCode, 404)
  t.same(reply.json(), { detail: 'No Room matches the given query.' })
})

test('objectName must be a non-empty string and needs an objectLoader, naming the route', async (t) => {
  for (const [route, pattern] of [
    [{ objectLoader: () => null, objectName: '' }, /route GET \/ws\/rooms\/:room: objectName must be a non-empty string/],
    [{ objectName: 'Room' }, /route GET \/ws\/rooms\/:room: objectName needs objectLoader/]
  ] as const) {
    const app = Fastify()
    await app.register(websocket)
    await app.register(chanx)
    t.throws(() => app.get('/ws/rooms/:room', { websocket: true, ...route }, () => {}), pattern)
    await closeApp(app)
  }
})
