import type { IncomingMessage } from 'node:http'
import type { WebSocketServer } from 'ws'
import { replaceHandleProtocols } from '../core/ws-internals'

type HandleProtocols = (protocols: Set<string>, request: IncomingMessage) => string | false

/**
 * ws answers a handshake with the first subprotocol the client offered, unless told otherwise. A token sent
 * as a subprotocol value (`bearer.<jwt>`) must never come back in the response headers, so the server only
 * ever selects among the values that carry no credentials; an app's own `handleProtocols` sees only those.
 * `credentialPrefixes` are in lower case, and values are matched without regard to case.
 */
export function guardSubprotocols (wss: WebSocketServer, credentialPrefixes: ReadonlySet<string>): void {
  const carriesCredentials = (value: string): boolean => {
    const dot = value.indexOf('.')
    // Prefixes are held in lower case: `Bearer.<jwt>` carries the same credential as `bearer.<jwt>`.
    return dot > 0 && credentialPrefixes.has(value.slice(0, dot).toLowerCase())
  }

  const appChoice: HandleProtocols | null | undefined = replaceHandleProtocols(wss, function selectProtocol (protocols, request) {
    const safe = new Set<string>()
    for (const protocol of protocols) if (!carriesCredentials(protocol)) safe.add(protocol)
    if (typeof appChoice === 'function') {
      const chosen = appChoice(safe, request)
      return chosen !== false && safe.has(chosen) ? chosen : false
    }
    const first = safe.values().next()
    return first.done === true ? false : first.value
  })
}
