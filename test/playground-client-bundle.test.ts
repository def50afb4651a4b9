import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'tap'
import { buildSync } from 'esbuild'
import { gzipSync } from 'node:zlib'

const root = join(__dirname, '..')

test('the playground\'s client.js is fastify-chanx/client as built now (npm run build:playground-client)', async (t) => {
  const script = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts['build:playground-client'] as string
  t.match(script, /^esbuild plugin\/client\/index\.ts /, 'the build script bundles the client entry')
  const result = buildSync({
    absWorkingDir: root,
    entryPoints: ['plugin/client/index.ts'],
    bundle: true,
    minify: true,
    format: 'iife',
    globalName: 'ChanxClient',
    target: 'es2020',
    legalComments: 'none',
    write: false
  })
  const built = result.outputFiles[0]!.text
  const committed = readFileSync(join(root, 'plugin', 'playground', 'client.js'), 'utf8')
  t.equal(committed, built, 'plugin/playground/client.js is stale: run npm run build:playground-client')
})

test('fastify-chanx/client stays under 4.5 KB minified and gzipped (README: npx esbuild ... --format=esm | gzip)', async (t) => {
  const result = buildSync({ absWorkingDir: root, entryPoints: ['plugin/client/index.ts'], bundle: true, minify: true, format: 'esm', write: false })
  const size = gzipSync(result.outputFiles[0]!.contents).length
  t.ok(size < 4608, `${size} bytes`)
})
