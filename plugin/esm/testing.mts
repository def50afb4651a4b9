/** The ESM entry of `fastify-chanx/testing`: the CommonJS build's helpers, re-exported. */
export * from '../testing.js'
