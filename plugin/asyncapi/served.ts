/**
 * Serving the AsyncAPI document (JSON and YAML) and the playground page (issue 7). The page is plain HTML,
 * CSS and JS shipped in `playground/` beside this file: no build step, nothing loaded from another host
 * (its Content-Security-Policy says so). It reads the document from `${path}/asyncapi.json`.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { AsyncApiDocument } from './document'
import type { ResolvedPlaygroundOptions } from './options'
import { toYaml } from './yaml'

/** The document, serialized once: no route can be added once the server answers requests. */
function documentCache (asyncapi: () => AsyncApiDocument): { json: () => string, yaml: () => string } {
  let json: string | null = null
  let yaml: string | null = null
  return {
    json: () => (json ??= JSON.stringify(asyncapi(), null, 2)),
    yaml: () => (yaml ??= toYaml(asyncapi()))
  }
}

export function serveAsyncApi (fastify: FastifyInstance, path: string, asyncapi: () => AsyncApiDocument): void {
  const cache = documentCache(asyncapi)
  fastify.get(`${path}.json`, async (_request, reply) => reply.type('application/json; charset=utf-8').send(cache.json()))
  fastify.get(`${path}.yaml`, async (_request, reply) => reply.type('application/yaml; charset=utf-8').send(cache.yaml()))
}

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

function escapeAttribute (text: string): string {
  return text.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

export function servePlayground (fastify: FastifyInstance, options: ResolvedPlaygroundOptions, asyncapi: () => AsyncApiDocument): void {
  const dir = join(__dirname, '..', 'playground')
  const base = options.path === '/' ? '' : options.path
  const html = readFileSync(join(dir, 'index.html'), 'utf8').replace(/%BASE%/g, escapeAttribute(base))
  const script = readFileSync(join(dir, 'playground.js'), 'utf8')
  // fastify-chanx/client, bundled for the browser (`npm run build:playground-client`): the page connects through it.
  const client = readFileSync(join(dir, 'client.js'), 'utf8')
  const style = readFileSync(join(dir, 'playground.css'), 'utf8')
  const cache = documentCache(asyncapi)
  const headers = { 'content-security-policy': CSP, 'x-content-type-options': 'nosniff', 'cache-control': 'no-store' }
  fastify.get(options.path, async (_request, reply) => reply.headers(headers).type('text/html; charset=utf-8').send(html))
  fastify.get(`${base}/playground.js`, async (_request, reply) => reply.headers(headers).type('text/javascript; charset=utf-8').send(script))
  fastify.get(`${base}/client.js`, async (_request, reply) => reply.headers(headers).type('text/javascript; charset=utf-8').send(client))
  fastify.get(`${base}/playground.css`, async (_request, reply) => reply.headers(headers).type('text/css; charset=utf-8').send(style))
  fastify.get(`${base}/asyncapi.json`, async (_request, reply) => reply.headers(headers).type('application/json; charset=utf-8').send(cache.json()))
}
