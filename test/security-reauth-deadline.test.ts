import { test } from 'tap'
import { IsAuthenticated, type Authenticator } from '../plugin'
import { connect } from '../plugin/testing'
import { socketApp, type Teardown } from './helpers/router-client'

/** A user store behind an authenticator: `hangOnce()` makes its next lookup never settle (until teardown). */
async function storeApp (t: Teardown, chanxOptions: Record<string, unknown> = {}) {
  const active = new Set(['alice'])
  let hang = false
  let lookups = 0
  const hung: Array<() => void> = []
  const store: Authenticator = {
    authenticate () {
      lookups++
      if (hang) {
        hang = false
        // A lookup that never answers; settled at teardown only, after the socket is gone.
        return new Promise((resolve) => hung.push(() => resolve({ id: 'alice' })))
      }
      return active.has('alice') ? { id: 'alice' } : null
    }
  }
  t.teardown(() => { for (const settle of hung) settle() })
  const app = await socketApp(t, {
    chanx: { authentication: [store], permissions: [IsAuthenticated], reauthenticateInterval: 50, handshakeTimeout: 400, ...chanxOptions }
  })
  app.get('/ws', { websocket: true }, () => {})
  await app.ready()
  return { app, active, hangOnce: () => { hang = true }, lookups: () => lookups }
}

test('a re-authentication that hangs is cut by its deadline: the socket closes 4503, and a later deactivation is not missed', async (t) => {
  const { app, active, hangOnce, lookups } = await storeApp(t)
  const first = await connect(app, '/ws', { timeout: 5000 })
  t.equal((await first.authentication()).status_code, 200)
  hangOnce()
  const started = Date.now()
  t.same(await first.receive(), {
    action: 'authentication',
    payload: { status_code: 503, status_text: 'Service Unavailable', data: { detail: 'Re-authentication timed out' } }
  }, 'the hung re-authentication counts as a refusal')
  t.equal(await first.closed(), 4503, 'a code the client reconnects after')
  t.ok(Date.now() - started < 4000, `closed by the deadline (${Date.now() - started} ms; handshakeTimeout 400 ms)`)

  // The client comes back; its new socket is re-authenticated again, and a deactivation closes it.
  const second = await connect(app, '/ws', { timeout: 5000 })
  t.equal((await second.authentication()).status_code, 200)
  const before = lookups()
  active.delete('alice')
  t.equal(await second.closed(), 4403, 'the deactivated user is closed on the next re-authentication')
  t.ok(lookups() > before)
})

test('with handshakeTimeout off, reauthenticateInterval is the deadline', async (t) => {
  const { app, hangOnce } = await storeApp(t, { handshakeTimeout: 0, reauthenticateInterval: 200 })
  const client = await connect(app, '/ws', { timeout: 5000 })
  t.equal((await client.authentication()).status_code, 200)
  hangOnce()
  t.equal(await client.closed(), 4503)
})
