import { test } from 'tap'
import { AuthenticationResult, ChanxAuthenticator } from '../plugin'
import { INTERNAL_500, buildApp, captureLogs, injectRefused, refusedRoute } from './helpers/handshake'

test('a custom status text longer than a close frame allows is sent whole, and cut in the close reason', async (t) => {
  const long = 'Your subscription to this module has lapsed; renew it from the billing page, then reconnect. '.repeat(2) + 'é'.repeat(20)
  class Lapsed extends ChanxAuthenticator {
    override async authenticate () {
      return new AuthenticationResult({ isAuthenticated: false, statusCode: 403, statusText: long, data: { detail: 'Subscription lapsed' } })
    }
  }
  const socket = await refusedRoute(t, { authenticatorClass: Lapsed })
  t.same(socket.messages, [`{"action":"authentication","payload":{"status_code":403,"status_text":${JSON.stringify(long)},"data":{"detail":"Subscription lapsed"}}}`])
  t.equal(socket.code, 4403, 'the refusal still closes with 4000 + status')
  t.ok(Buffer.byteLength(socket.reason) <= 123, 'the reason fits a close frame')
  t.ok(long.startsWith(socket.reason), 'the reason is the start of the status text')
  t.ok(socket.reason.length > 80)
})

test('AuthenticationResult refuses a status code that is not an HTTP status', async (t) => {
  for (const statusCode of [99, 600, 4403, 1.5, Number.NaN]) {
    t.throws(() => new AuthenticationResult({ isAuthenticated: false, statusCode }), { name: 'TypeError', message: /statusCode must be an HTTP status from 100 to 599/ }, String(statusCode))
  }
  t.equal(new AuthenticationResult({ isAuthenticated: false, statusCode: 599 }).statusText, 'Error')
  t.equal(new AuthenticationResult({ isAuthenticated: false, statusCode: 100 }).statusCode, 100)
})

test('a custom authenticator that builds a result with a bad status answers 500 and logs why', async (t) => {
  const { lines, logger } = captureLogs()
  class OutOfRange extends ChanxAuthenticator {
    override async authenticate () {
      return new AuthenticationResult({ isAuthenticated: false, statusCode: 600, data: { detail: 'weird' } })
    }
  }
  const app = await buildApp(t, { server: { logger } })
  app.get('/ws', { websocket: true, authenticatorClass: OutOfRange }, () => t.fail('handler ran'))
  app.get('/api', { authenticatorClass: OutOfRange }, async () => 'never')
  await app.ready()
  const socket = await injectRefused(app, '/ws')
  t.same(socket.messages, [INTERNAL_500])
  t.equal(socket.code, 4500)
  const http = await app.inject('/api')
  t.equal(http.statusCode, 500)
  t.equal(http.body, '{"detail":"Internal server error"}')
  t.ok(lines.some((line) => JSON.stringify(line).includes('statusCode must be an HTTP status')), 'the mistake is logged')
})
