/**
 * Holds idle authenticated connections for the memory scenario of bench/run.ts, in a process of its own
 * (one process cannot hold 20,000 sockets under a 20,000 fd limit, so the harness spreads them over several).
 * argv: url count cookie [connect]: with `connect` (Socket.IO's CONNECT packet) the client sends it after
 * engine.io's OPEN and waits for Socket.IO's CONNECT answer; without it, for the authentication message.
 * IPC: -> { type: 'open', count } or { type: 'failed', message }; <- { cmd: 'close' }.
 */
import { closeClients, openClients } from './clients'

async function main (): Promise<void> {
  const [url, count, cookie, connect] = process.argv.slice(2) as [string, string, string, string | undefined]
  try {
    const clients = await openClients(url, Number(count), connect !== undefined
      ? { cookie, connect, waitFor: '40{"sid"', batch: 500 }
      : { cookie, waitFor: '"status_code":200', batch: 500 })
    process.send!({ type: 'open', count: clients.length })
    process.on('message', () => { closeClients(clients).then(() => process.exit(0), () => process.exit(1)) })
  } catch (err) {
    process.send!({ type: 'failed', message: (err as Error).message })
    setTimeout(() => process.exit(1), 100)
  }
}

main().catch((err: unknown) => { console.error(err); process.exit(1) })
