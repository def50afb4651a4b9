'use strict'

// neostandard: the fastify org's ESLint config (standard style; TypeScript through typescript-eslint).
const neostandard = require('neostandard')
const { resolveIgnoresFromGitignore } = neostandard

module.exports = [
  ...neostandard({
    ts: true,
    // dist/, coverage/, .tap/, bench/out/ and the rest of .gitignore: built or generated, not written by hand.
    // plugin/playground/client.js is fastify-chanx/client bundled by `npm run build:playground-client`.
    ignores: [...resolveIgnoresFromGitignore(), 'plugin/playground/client.js']
  }),
  {
    // `void promise;` as a statement is how this codebase marks a promise it deliberately does not await
    // (the form typescript-eslint's no-floating-promises asks for); `void` inside expressions stays an error.
    rules: { 'no-void': ['error', { allowAsStatement: true }] }
  },
  {
    // The playground is served to the browser as is, with no build step: browser globals, not Node's.
    files: ['plugin/playground/**/*.js'],
    languageOptions: {
      sourceType: 'script',
      globals: { document: 'readonly', location: 'readonly', fetch: 'readonly', WebSocket: 'readonly', window: 'readonly' }
    }
  }
]
