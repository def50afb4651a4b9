import { ChanxClientError } from './errors'
import type { WebSocketConstructor } from './types'

declare const require: ((id: string) => unknown) | undefined

/**
 * The global WebSocket (browsers, Node ≥ 22), else `ws` loaded lazily on Node 20. The module name is not a
 * literal, so bundlers leave `ws` out of browser bundles.
 */
export function defaultWebSocket (): WebSocketConstructor {
  const scope = globalThis as { WebSocket?: WebSocketConstructor, process?: { getBuiltinModule?: (id: string) => { createRequire: (path: string) => (id: string) => unknown }, cwd: () => string } }
  if (typeof scope.WebSocket === 'function') return scope.WebSocket
  const name = 'ws'
  try {
    const load = typeof require === 'function' ? require : scope.process?.getBuiltinModule?.('module').createRequire(scope.process.cwd() + '/')
    if (load !== undefined) {
      const ws = load(name) as { WebSocket?: WebSocketConstructor }
      if (typeof ws.WebSocket === 'function') return ws.WebSocket
    }
  } catch {}
  throw new ChanxClientError('FST_CHANX_CLIENT_NO_WEBSOCKET', 'No WebSocket implementation: pass the WebSocket option (for example `ws`)')
}
