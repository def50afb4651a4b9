import { createRequire } from 'node:module'

/**
 * The version of the package `name` as `from` (a module's path) would load it, for the messages of
 * FST_CHANX_DEPENDENCY_CHANGED: '(version unknown)' when it cannot be read.
 */
export function installedVersion (name: string, from?: string): string {
  try {
    const load = from === undefined ? require : createRequire(from)
    return (load(`${name}/package.json`) as { version: string }).version
  } catch {
    return '(version unknown)'
  }
}

/** The ws that @fastify/websocket loads (the one whose sockets the plugin gets), else fastify-chanx's own. */
export function websocketWsVersion (): string {
  try {
    return installedVersion('ws', require.resolve('@fastify/websocket'))
  } catch {
    return installedVersion('ws')
  }
}

export function fastifyWebsocketVersion (): string {
  return installedVersion('@fastify/websocket')
}
