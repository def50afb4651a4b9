/** Validators shared by the plugin's and the routes' options: each names the option it checks in its error. */
import { InvalidOptionError } from './errors'

export function isRecord (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

export function checkCount (value: unknown, fallback: number, where: string): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new InvalidOptionError(`${where} must be a whole number, 0 or more (0 turns it off)`)
  }
  return value
}

export function checkNames (value: unknown, where: string): readonly string[] {
  if (!Array.isArray(value) || value.some((name) => typeof name !== 'string' || name === '')) {
    throw new InvalidOptionError(`${where} must be an array of query parameter names`)
  }
  return value
}

export function checkInterval (value: unknown, where: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 2 ** 31 - 1) {
    throw new InvalidOptionError(`${where} must be a whole number of milliseconds (0 turns it off)`)
  }
  return value
}

export function checkBoolean (value: unknown, where: string): boolean {
  if (typeof value !== 'boolean') throw new InvalidOptionError(`${where} must be a boolean`)
  return value
}

export function positiveInteger (value: unknown, where: string, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) throw new InvalidOptionError(`${where} must be a positive integer`)
  return value
}

export function optionalBoolean (value: unknown, where: string): boolean {
  if (value === undefined) return false
  if (typeof value !== 'boolean') throw new InvalidOptionError(`${where} must be a boolean`)
  return value
}

export function optionalFunction<F> (value: unknown, where: string): F | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'function') throw new InvalidOptionError(`${where} must be a function`)
  return value as F
}

/** Damerau-Levenshtein distance (adjacent swaps count one), case-insensitive; stops counting past `max`. */
function distance (a: string, b: string, max: number): number {
  a = a.toLowerCase()
  b = b.toLowerCase()
  if (Math.abs(a.length - b.length) > max) return max + 1
  const rows: number[][] = []
  for (let i = 0; i <= a.length; i++) rows.push([i])
  for (let j = 1; j <= b.length; j++) rows[0]![j] = j
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let best = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, rows[i - 2]![j - 2]! + 1)
      rows[i]![j] = best
    }
  }
  return rows[a.length]![b.length]!
}

/**
 * The one of `names` that `key` is a near miss of (same letters in another case, or one or two typos for
 * names of six letters or more, one below), or undefined when none is close.
 */
export function nearMiss (key: string, names: Iterable<string>): string | undefined {
  let best: string | undefined
  let bestDistance = Infinity
  for (const name of names) {
    const max = name.length >= 6 ? 2 : 1
    const d = distance(key, name, max)
    if (d <= max && d < bestDistance) {
      best = name
      bestDistance = d
    }
  }
  return best
}

/** A promise or any object with a `then` method (a handler's result, a hook's). */
export function isThenable (value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
}
