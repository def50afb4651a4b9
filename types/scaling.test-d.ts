// Type tests of the scale-out options: Redis Cluster forms, ioredis clients, presence.
import Fastify from 'fastify'
import { Cluster, Redis } from 'ioredis'
import chanx, { type PresenceInfo, type RedisLayer, type RedisOption } from 'fastify-chanx'

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false
function expectType<T extends true> (): T | void {}

const app = Fastify()
void app.register(chanx, { redis: { cluster: [{ host: '10.0.0.1', port: 7000 }, 'redis://10.0.0.2:7000'], prefix: 'app:' }, presence: true })
void app.register(chanx, { redis: { cluster: [{ host: '10.0.0.1', port: 7000 }], clusterOptions: { redisOptions: { password: 'p' } } } })
void app.register(chanx, { redis: 'redis://127.0.0.1:6379', presence: { ttl: 10_000 } })

// ioredis's own clients are accepted as they are.
const single: RedisOption = new Redis({ lazyConnect: true })
const cluster: RedisOption = new Cluster([{ host: '10.0.0.1', port: 7000 }], { lazyConnect: true })
void single
void cluster

async function use (): Promise<void> {
  const presence = await app.chanx.presence('room:lobby')
  expectType<Equal<typeof presence, PresenceInfo>>()
  expectType<Equal<PresenceInfo, { connections: number, users: string[] }>>()
  void presence
  const access = (app.chanx.hub.layer as RedisLayer).redis
  expectType<Equal<typeof access.publishCommand, 'publish' | 'spublish'>>()
  expectType<Equal<ReturnType<typeof access.name>, string>>()
  void access
}
void use

// @ts-expect-error presence.ttl is a number of milliseconds
void app.register(chanx, { presence: { ttl: '30s' } })
// @ts-expect-error cluster is a list of nodes
void app.register(chanx, { redis: { cluster: 'redis://10.0.0.1:7000' } })
