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
