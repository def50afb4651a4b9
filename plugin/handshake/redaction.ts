import type { FastifyRequest } from 'fastify'

export const REDACTED = '[REDACTED]'

/** Replaces the values of the named query parameters in a URL's query string. */
export function redactUrl (url: string, names: ReadonlySet<string>): string {
  const question = url.indexOf('?')
  if (question === -1 || names.size === 0) return url
  const pairs = url.slice(question + 1).split('&')
  let changed = false
  for (let i = 0; i < pairs.length; i++) {
    const pair = pairs[i]!
    const equals = pair.indexOf('=')
    const rawName = equals === -1 ? pair : pair.slice(0, equals)
    let name: string
    try {
      name = decodeURIComponent(rawName.replace(/\+/g, ' '))
    } catch {
      name = rawName
    }
    if (names.has(name)) {
      pairs[i] = rawName + '=' + REDACTED
      changed = true
    }
  }
  return changed ? url.slice(0, question + 1) + pairs.join('&') : url
}

/**
 * The `req` log serializer of a socket route: Fastify's usual fields, with credential-carrying query
 * parameters redacted and no headers at all (cookies, Authorization and Sec-WebSocket-Protocol stay out).
 */
export function createRequestSerializer (names: ReadonlySet<string>) {
  return function serializeSocketRequest (request: FastifyRequest) {
    return {
      method: request.method,
      url: redactUrl(request.url, names),
      host: request.host,
      remoteAddress: request.ip,
      remotePort: request.socket?.remotePort
    }
  }
}
