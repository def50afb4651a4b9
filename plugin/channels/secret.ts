import { InvalidOptionError } from '../core/errors'

/** A shared secret of at least 32 bytes, or several (the first signs, all verify: key rotation). */
export type ChannelSecret = string | Buffer | readonly (string | Buffer)[]

const MIN_SECRET_BYTES = 32

/** The keys of a {@link ChannelSecret}, checked: each a string or Buffer of at least 32 bytes. */
export function channelKeys (value: unknown, where: string): Buffer[] {
  const list: readonly unknown[] = Array.isArray(value) ? value : [value]
  if (list.length === 0) throw new InvalidOptionError(`${where} must be a secret of at least ${MIN_SECRET_BYTES} bytes or a non-empty list of them`)
  return list.map((secret, i) => {
    const key = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : Buffer.isBuffer(secret) ? Buffer.from(secret) : null
    if (key === null || key.length < MIN_SECRET_BYTES) {
      const at = Array.isArray(value) ? `${where}[${i}]` : where
      throw new InvalidOptionError(`${at} must be a string or Buffer of at least ${MIN_SECRET_BYTES} bytes`)
    }
    return key
  })
}
