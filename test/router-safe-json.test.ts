import { test } from 'tap'
import { DEFAULT_MAX_DEPTH, INVALID, exceedsDepth, safeParse } from '../plugin/messages/safe-json'

test('depth is counted outside strings, and escaped quotes do not end a string', async (t) => {
  t.equal(DEFAULT_MAX_DEPTH, 64)
  t.equal(exceedsDepth('[[[]]]', 3), false)
  t.equal(exceedsDepth('[[[[]]]]', 3), true)
  t.equal(exceedsDepth('["[[[[[[", {"a": "\\"[[[[[["}]', 3), false)
  t.equal(exceedsDepth('[' + '{"a":'.repeat(70) + '1' + '}'.repeat(70) + ']', 64), true)
  t.equal(exceedsDepth('[]'.repeat(1000), 1), false, 'siblings do not add up')
})

test('the count of opening brackets decides at once only when it is within the limit', async (t) => {
  const big = '{"text":"' + 'x'.repeat(4096) + '","n":[1,{"a":[2]}]}'
  t.equal(exceedsDepth(big, 4), false, 'a 4 KB text with 4 openings: within the limit without a scan')
  t.equal(exceedsDepth(big, 3), true, 'the same text nests 4 deep: over a limit of 3')
  t.equal(exceedsDepth('["' + '{['.repeat(40) + '"]', 3), false, 'openings inside a string: many, so scanned, and not counted')
  t.equal(exceedsDepth('{"a":{"b":{"c":' + '1}}}' + ' '.repeat(10), 3), false, 'exactly at the limit')
  t.equal(exceedsDepth('{"a":{"b":{"c":{"d":1}}}}' + ' '.repeat(10), 3), true, 'one past the limit')
})

test('safeParse refuses deep nesting before JSON.parse, and bad JSON', async (t) => {
  t.equal(safeParse('['.repeat(65) + ']'.repeat(65)), INVALID)
  t.same(safeParse('['.repeat(64) + ']'.repeat(64)), JSON.parse('['.repeat(64) + ']'.repeat(64)))
  t.equal(safeParse('['.repeat(100000)), INVALID)
  t.equal(safeParse('{"a":'), INVALID)
  t.equal(safeParse(''), INVALID)
  t.same(safeParse('{"a":[1,2,{"b":null}]}'), { a: [1, 2, { b: null }] })
})

test('__proto__ keys, plain or escaped, and constructor.prototype are removed at any depth', async (t) => {
  const value = safeParse('{"a":{"__proto__":{"polluted":1}},"\\u005f_proto__":{"x":1},"b":[{"constructor":{"prototype":{"y":1}}}],"constructor":"kept"}') as Record<string, unknown>
  t.same(Object.keys(value), ['a', 'b', 'constructor'])
  t.notOk(Object.prototype.hasOwnProperty.call(value.a, '__proto__'))
  t.same((value.b as unknown[])[0], {})
  t.equal(value.constructor, 'kept')
  t.equal(({} as Record<string, unknown>).polluted, undefined)
  const merged = Object.assign({}, value.a) as Record<string, unknown>
  t.equal(merged.polluted, undefined)
})
