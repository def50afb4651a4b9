import type { RouteOptions } from 'fastify'
import type { RouteHandshake } from '../handshake/route-options'

/** The socket routes, recorded by the plugin's `onRoute` hook as they are declared, for the document. */

/** A socket route as the document needs it, recorded by the plugin's `onRoute` hook. */
export interface SocketRouteRecord {
  readonly url: string
  readonly method: string
  /** Path params in URL order (`'*'` for a wildcard). */
  readonly params: readonly string[]
  readonly handshake: RouteHandshake
  /** The route's `schema.querystring`, when it declares one. */
  readonly querystring: unknown
  readonly summary: string | undefined
  readonly description: string | undefined
}

/** The path params of a Fastify URL, in order: `/a/:b/:c(^\d+$)-:d/*` gives `b`, `c`, `d`, `*`. */
export function pathParams (url: string): { name: string, pattern?: string }[] {
  const params: { name: string, pattern?: string }[] = []
  for (let i = 0; i < url.length; i++) {
    const char = url[i]
    if (char === '*') {
      params.push({ name: '*' })
      continue
    }
    if (char !== ':') continue
    if (url[i + 1] === ':') { i++; continue } // "::" is a literal colon
    let j = i + 1
    while (j < url.length && /[A-Za-z0-9_]/.test(url[j]!)) j++
    const name = url.slice(i + 1, j)
    let pattern: string | undefined
    if (url[j] === '(') {
      let depth = 0
      let k = j
      for (; k < url.length; k++) {
        if (url[k] === '\\') { k++; continue }
        if (url[k] === '(') depth++
        else if (url[k] === ')' && --depth === 0) break
      }
      pattern = url.slice(j + 1, k)
      j = k + 1
    }
    if (name !== '') params.push(pattern === undefined ? { name } : { name, pattern })
    i = j - 1
  }
  return params
}

/** The AsyncAPI address of a Fastify URL: `/ws/rooms/:roomId` gives `/ws/rooms/{roomId}`. */
export function addressOf (url: string): string {
  let out = ''
  for (let i = 0; i < url.length; i++) {
    const char = url[i]!
    if (char === '*') { out += '{wildcard}'; continue }
    if (char !== ':') { out += char; continue }
    if (url[i + 1] === ':') { out += ':'; i++; continue }
    let j = i + 1
    while (j < url.length && /[A-Za-z0-9_]/.test(url[j]!)) j++
    out += '{' + url.slice(i + 1, j) + '}'
    if (url[j] === '(') {
      let depth = 0
      for (; j < url.length; j++) {
        if (url[j] === '\\') { j++; continue }
        if (url[j] === '(') depth++
        else if (url[j] === ')' && --depth === 0) break
      }
      j++
    }
    i = j - 1
  }
  return out
}

export function recordRoute (route: RouteOptions, handshake: RouteHandshake): SocketRouteRecord {
  const schema = (route.schema ?? {}) as { querystring?: unknown, summary?: unknown, description?: unknown }
  return {
    url: route.url,
    method: Array.isArray(route.method) ? route.method.join(', ') : String(route.method),
    params: pathParams(route.url).map((param) => param.name),
    handshake,
    querystring: schema.querystring,
    summary: typeof schema.summary === 'string' ? schema.summary : undefined,
    description: typeof schema.description === 'string' ? schema.description : undefined
  }
}
