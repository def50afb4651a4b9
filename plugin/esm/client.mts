/** The ESM entry of `fastify-chanx/client`: the CommonJS build's client, re-exported (one class identity for `instanceof`). */
export * from '../client/index.js'
