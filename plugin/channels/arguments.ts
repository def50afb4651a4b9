import { withoutServerFields } from '../core/protocol-fields'
import { MAX_CHANNEL_NAME } from './envelope'
import { InvalidChannelArgumentError } from './errors'
import { describeThrown } from './layer'

/** What the hub accepts from callers (group names, user keys, messages): checked before anything is sent. */

export function checkName (value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_CHANNEL_NAME) {
    throw new InvalidChannelArgumentError(`${what} must be a non-empty string of at most ${MAX_CHANNEL_NAME} characters`)
  }
  return value
}

export function checkGroups (groups: string | readonly string[]): readonly string[] {
  const list = typeof groups === 'string' ? [groups] : groups
  if (!Array.isArray(list)) throw new InvalidChannelArgumentError('groups must be a group name or an array of them')
  for (let i = 0; i < list.length; i++) checkName(list[i], `groups[${i}]`)
  return list
}

/**
 * The message as JSON text, without the top-level fields only the server sets (core/protocol-fields.ts); it
 * must be a plain object so that is_mine and is_current can be added to it.
 */
export function serializeObject (message: unknown): string {
  if (typeof message !== 'object' || message === null || Array.isArray(message)) {
    throw new InvalidChannelArgumentError('a broadcast message must be a JSON object')
  }
  let body: string
  try {
    body = JSON.stringify(withoutServerFields(message))
  } catch (err) {
    throw new InvalidChannelArgumentError(`a broadcast message must serialize to JSON: ${describeThrown(err)}`)
  }
  // A toJSON() may turn the object into something else.
  if (typeof body !== 'string' || body.charCodeAt(0) !== 123) throw new InvalidChannelArgumentError('a broadcast message must serialize to a JSON object')
  return body
}

/** A close code and reason `disconnectUser` may send: 1000 or 3000–4999, and at most 123 bytes of reason. */
export function checkClose (code: number, reason: unknown): void {
  if (!Number.isInteger(code) || !(code === 1000 || (code >= 3000 && code <= 4999))) {
    throw new InvalidChannelArgumentError('a close code must be 1000 or an integer from 3000 to 4999')
  }
  if (typeof reason !== 'string' || Buffer.byteLength(reason) > 123) {
    throw new InvalidChannelArgumentError('a close reason must be a string of at most 123 bytes')
  }
}
