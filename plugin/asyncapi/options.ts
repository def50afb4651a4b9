import { InvalidOptionError } from '../core/errors'

/** The `asyncapi` and `playground` plugin options: where the document and the page are served, and what the document's `info` and `servers` say. */

export interface AsyncApiInfo {
  title: string
  version: string
  description?: string
}

export interface AsyncApiOptions {
  /**
   * Serve the document as JSON at `${path}.json` and YAML at `${path}.yaml` (default `'/asyncapi'`);
   * `false`: only `app.chanx.asyncapi()`.
   */
  path?: string | false
  /** The document's `info` (default `{ title: 'WebSocket API', version: '1.0.0' }`). */
  info?: AsyncApiInfo
  /** The document's `servers`, as AsyncAPI 3.0 Server Objects keyed by name (default: none). */
  servers?: Record<string, AsyncApiServer>
}

export interface AsyncApiServer {
  host: string
  protocol: string
  pathname?: string
  description?: string
  [extra: string]: unknown
}

export interface ResolvedAsyncApiOptions {
  path: string | null
  info: AsyncApiInfo
  servers: Record<string, AsyncApiServer> | undefined
}

const DEFAULT_INFO: AsyncApiInfo = { title: 'WebSocket API', version: '1.0.0' }

function isPlainObject (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

/** A URL path the plugin serves something at: absolute, no query, no params, no trailing slash. */
export function checkServedPath (value: unknown, where: string): string {
  if (typeof value !== 'string' || !/^\/[A-Za-z0-9._~\-/]*$/.test(value) || value.includes('//') || (value.length > 1 && value.endsWith('/'))) {
    throw new InvalidOptionError(`${where} must be a path such as "/asyncapi" (starting with "/", no trailing "/", no ":" params, "?" or "*")`)
  }
  return value
}

/** Validates the `asyncapi` plugin option; unset keeps the document available from `app.chanx.asyncapi()` only. */
export function resolveAsyncApiOptions (value: unknown): ResolvedAsyncApiOptions {
  if (value === undefined) return { path: null, info: DEFAULT_INFO, servers: undefined }
  if (!isPlainObject(value)) {
    throw new InvalidOptionError('option asyncapi must be an object { path?, info?: { title, version }, servers? }')
  }
  for (const key of Object.keys(value)) {
    if (key !== 'path' && key !== 'info' && key !== 'servers') {
      throw new InvalidOptionError(`option asyncapi has an unknown key "${key}"; expected path, info or servers`)
    }
  }
  const path = value.path === undefined ? '/asyncapi' : value.path === false ? null : checkServedPath(value.path, 'option asyncapi.path')
  let info = DEFAULT_INFO
  if (value.info !== undefined) {
    const given = value.info
    if (!isPlainObject(given) || typeof given.title !== 'string' || given.title === '' ||
      typeof given.version !== 'string' || given.version === '' ||
      (given.description !== undefined && typeof given.description !== 'string')) {
      throw new InvalidOptionError('option asyncapi.info must be { title: string, version: string, description?: string }')
    }
    info = { ...(given as unknown as AsyncApiInfo) }
  }
  let servers: Record<string, AsyncApiServer> | undefined
  if (value.servers !== undefined) {
    if (!isPlainObject(value.servers)) throw new InvalidOptionError('option asyncapi.servers must be an object of { host, protocol } keyed by name')
    for (const [name, server] of Object.entries(value.servers)) {
      if (!/^[A-Za-z0-9_.-]+$/.test(name) || !isPlainObject(server) || typeof server.host !== 'string' || typeof server.protocol !== 'string') {
        throw new InvalidOptionError(`option asyncapi.servers.${name} must be { host: string, protocol: string } under a name of letters, digits, ".", "-" or "_"`)
      }
    }
    servers = value.servers as Record<string, AsyncApiServer>
  }
  return { path, info, servers }
}

export interface PlaygroundOptions {
  /** Where the page is served (default `'/chanx/playground'`); its script and the document are served below it. */
  path?: string
}

export interface ResolvedPlaygroundOptions {
  path: string
}

/** Validates the `playground` option: `null` (off) unless it is set. */
export function resolvePlaygroundOptions (value: unknown): ResolvedPlaygroundOptions | null {
  if (value === undefined || value === false) return null
  if (value === true) return { path: '/chanx/playground' }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidOptionError('option playground must be { path?: string }, true or false')
  }
  for (const key of Object.keys(value)) {
    if (key !== 'path') throw new InvalidOptionError(`option playground has an unknown key "${key}"; expected path`)
  }
  const path = (value as PlaygroundOptions).path
  return { path: path === undefined ? '/chanx/playground' : checkServedPath(path, 'option playground.path') }
}
