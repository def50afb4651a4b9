/**
 * The ESM entry of `fastify-chanx`: a thin wrapper over the CommonJS build, so that `import` and `require`
 * share one instance (no dual-package hazard), while an ESM app gets a real default export and
 * declarations it resolves in ESM mode.
 */
export * from '../index.js'
export { fastifyChanx as default } from '../index.js'
