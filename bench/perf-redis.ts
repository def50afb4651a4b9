/**
 * The fixed cost of one broadcast over Redis, against in process: `node --import tsx bench/perf-redis.ts`.
 * One sending hub and one receiving hub (each its own Redis connections) in this process, `MEMBERS` members
 * that count what they receive; prints this process's CPU µs per broadcast, both ways.
 */
import { ChannelHub, createRedisLayer, type ChannelMember } from '../plugin'
import { RedisServer } from '../test/helpers/redis'

const MEMBERS = Number(process.env.MEMBERS ?? 100)
const COUNT = Number(process.env.COUNT ?? 20000)

let received = 0
function member (i: number): ChannelMember {
  return { id: String(i), userKey: 'u' + i, send () { received++ }, close () {} }
}

async function run (sender: ChannelHub, receiver: ChannelHub, label: string): Promise<void> {
  for (let i = 0; i < MEMBERS; i++) await receiver.join(member(i), 'g')
  for (let round = 0; round < 3; round++) {
    received = 0
    const start = process.cpuUsage()
    for (let i = 0; i < COUNT; i++) {
      void sender.broadcast('g', { action: 'tick', payload: { t: Date.now() + 0.5, s: i } }).catch(() => {})
      if (i % 100 === 99) await new Promise((resolve) => setImmediate(resolve))
    }
    const expected = COUNT * MEMBERS
    for (;;) {
      if (received >= expected) break
      await new Promise((resolve) => setTimeout(resolve, 1))
    }
    const cpu = process.cpuUsage(start)
    console.log(`${label}: ${((cpu.user + cpu.system) / COUNT).toFixed(2)} µs CPU per broadcast to ${MEMBERS} (user ${(cpu.user / COUNT).toFixed(2)})`)
  }
}

async function main (): Promise<void> {
  const local = new ChannelHub()
  await run(local, local, 'in process')
  await local.close()
  const redis = await RedisServer.start()
  const sender = new ChannelHub({ layer: await createRedisLayer({ url: redis.url }) })
  const receiver = new ChannelHub({ layer: await createRedisLayer({ url: redis.url }) })
  await run(sender, receiver, 'over redis')
  await sender.close()
  await receiver.close()
  await redis.stop()
}

main().catch((err: unknown) => { console.error(err); process.exit(1) })
