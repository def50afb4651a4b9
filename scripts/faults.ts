/*
 * `npm run faults`: the long seeded run of the fault harness (test/helpers/faults/). It draws faults by the
 * seed from every class the topology has while numbered messages flow, checks the delivery contract of
 * docs/recovery.md for every client and stream, and prints the table per fault class. It runs until all
 * three minimums are met: the duration, the messages published and the faults injected. Exit status 1
 * when any message was silently lost, duplicated, out of order, or delivered after its publish rejected.
 *
 *   FAULTS_TOPOLOGY  redis | cluster | both          (default both: each gets half of every minimum)
 *   FAULTS_SEED      the PRNG seed                    (default: from the clock; printed)
 *   FAULTS_MINUTES   at least this long, in all       (default 15)
 *   FAULTS_MESSAGES  at least this many messages      (default 1000000)
 *   FAULTS_COUNT     at least this many faults        (default 200)
 *   FAULTS_RATE      messages a second, all streams   (default 1200)
 *   FAULTS_CLIENTS   clients                          (default 12)
 * Flags override them: --topology=cluster --seed=7 --minutes=2 --messages=0 --count=10 --rate=300 --clients=6
 */
import { runFaults } from '../test/helpers/faults/harness'
import type { FaultClass } from '../test/helpers/faults/faults'

function setting (name: string, fallback: string): string {
  const flag = process.argv.find((a) => a.startsWith(`--${name}=`))
  return flag?.slice(name.length + 3) ?? process.env[`FAULTS_${name.toUpperCase()}`] ?? fallback
}

const CLASSES: Record<'redis' | 'cluster', FaultClass[]> = {
  redis: ['cut', 'cut', 'sigkill', 'rolling', 'pubsub', 'redis-restart', 'read-fail'],
  cluster: ['cut', 'cut', 'sigkill', 'rolling', 'pubsub', 'failover', 'read-fail']
}

async function main (): Promise<void> {
  const which = setting('topology', 'both')
  const seed = Number(setting('seed', String(Date.now() % 1_000_000)))
  const minutes = Number(setting('minutes', '15'))
  const messages = Number(setting('messages', '1000000'))
  const count = Number(setting('count', '200'))
  const rate = Number(setting('rate', '1200'))
  const clients = Number(setting('clients', '12'))
  if (which !== 'both' && which !== 'redis' && which !== 'cluster') throw new Error(`--topology must be redis, cluster or both, not ${which}`)
  for (const [name, value] of Object.entries({ seed, minutes, messages, count, rate, clients })) {
    if (!Number.isFinite(value) || value < 0) throw new Error(`--${name} must be a number ≥ 0, not ${value}`)
  }
  const topologies = which === 'both' ? ['redis', 'cluster'] as const : [which]
  const share = topologies.length
  let failed = false
  console.log(`# npm run faults: seed ${seed}; at least ${minutes} min, ${messages} messages and ${count} faults; ${rate} msg/s, ${clients} clients; ${topologies.join(' then ')}`)
  for (const topology of topologies) {
    const durationMs = minutes * 60_000 / share
    const faults = Math.ceil(count / share)
    const result = await runFaults({
      topology,
      seed,
      rate,
      clients,
      groups: 8,
      users: 4,
      multi: ['m:g0,g1', 'm:g2,g5'],
      schedule: { count: faults, classes: CLASSES[topology], durationMs, messages: Math.ceil(messages / share) },
      gapMs: Math.max(500, durationMs / faults / 2),
      history: { size: 100_000, maxAge: 120_000 },
      settleMs: 30_000,
      log: (line) => console.log(line)
    })
    console.log(`\n## ${topology}, seed ${seed}: ${result.published} messages, ${result.delivered} deliveries\n\n${result.table}\n`)
    if (result.summary !== '') console.log(result.summary)
    if (result.violations.length > 0) failed = true
  }
  process.exitCode = failed ? 1 : 0
}

main().catch((err) => { console.error(err); process.exitCode = 2 })
