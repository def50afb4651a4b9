import { frameText } from './ws-internals'

/**
 * One outgoing text, shared by every socket it goes to: a broadcast copy, `group_complete`. The text is
 * encoded and framed once, on first use, and the same buffer is written to every socket that can take it
 * as it is (core/ws-internals.ts `writeFramed`); the others are sent `text` the usual way.
 */
export class SharedFrame {
  private bytes: Buffer | null = null

  constructor (readonly text: string) {}

  /** The whole WebSocket frame: header and UTF-8 payload. */
  get framed (): Buffer {
    this.bytes ??= frameText(Buffer.from(this.text))
    return this.bytes
  }
}
