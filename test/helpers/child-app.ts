import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { childEnv } from './child-env'

const root = join(__dirname, '..', '..')

/**
 * Starts a TypeScript entry point of this repository (`example/server.ts`, `example/quickstart.ts`) as
 * its own process, the way `npm run example` does, on a free port; resolves with its base URL
 * (`http://127.0.0.1:<port>`) once Fastify logs that it listens. The process is killed at teardown.
 */
export async function startChildApp (
  t: { teardown (fn: () => unknown): void },
  entry: string,
  env: Record<string, string> = {}
): Promise<string> {
  return (await startChildProcess(t, entry, env)).base
}

/** As startChildApp, with `stop()` to kill the process before teardown (a server restart) and wait for its exit. */
export async function startChildProcess (
  t: { teardown (fn: () => unknown): void },
  entry: string,
  env: Record<string, string> = {}
): Promise<{ base: string, stop (): Promise<void> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', entry], {
    cwd: root,
    env: childEnv({ PORT: '0', LOG_LEVEL: 'info', ...env }),
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(() => { child.kill() })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const stop = async () => { child.kill('SIGKILL'); await exited }
  const base = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${entry} did not listen within 20 s`)), 20_000)
    let out = ''
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString()
      const match = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(out)
      if (match) { clearTimeout(timer); resolve(match[1]!) }
    })
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${entry} exited with ${code}`)) })
  })
  return { base, stop }
}

/** The example chat on an in-memory database, in process groups only. */
export function startExample (t: { teardown (fn: () => unknown): void }, env: Record<string, string> = {}): Promise<string> {
  return startChildApp(t, 'example/server.ts', { DB_PATH: ':memory:', REDIS_URL: '', ...env })
}
