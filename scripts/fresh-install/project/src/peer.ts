// The second process of redis.test.ts: the same app, on the same Redis, on a port of its own.
import type { AddressInfo } from 'node:net'
import { buildApp } from './app.js'

const app = await buildApp(process.env.REDIS_URL)
await app.listen({ host: '127.0.0.1', port: 0 })
process.send?.({ port: (app.server.address() as AddressInfo).port })
process.on('disconnect', () => { void app.close().then(() => process.exit(0)) })
