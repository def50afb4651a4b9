/**
 * The environment of a child process that runs this repository's TypeScript with `--import tsx`: the parent's,
 * plus `extra`, with tap's coverage switched off.
 *
 * Why off: tsx transpiles plugin/ into different JavaScript than tap's own loader does, and c8 merges the V8
 * coverage of one file from every process by byte offset before it applies the source maps. A child's
 * coverage of plugin/messages/dispatch.ts lands on the wrong offsets of the parent's, and the report
 * invents uncovered lines (and over 800 phantom branches) in files the tests do run. What the children
 * run, the in-process tests cover too.
 */
export function childEnv (extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, ...extra, _TAPJS_PROCESSINFO_COVERAGE_: '0' }
}
