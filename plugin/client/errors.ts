import type { RefusalInfo } from './types'

/** A refused handshake: the authentication message's status and detail, and the close code. */
export class ChanxRefusal extends Error implements RefusalInfo {
  readonly code = 'FST_CHANX_CLIENT_REFUSED'
  constructor (readonly status: number, readonly statusText: string, readonly detail: string, readonly closeCode: number) {
    super(status === 0 ? `The connection closed (${closeCode}) before the handshake finished` : `Refused: ${status} ${statusText}: ${detail}`)
    this.name = 'ChanxRefusal'
  }
}

export type ClientErrorCode =
  | 'FST_CHANX_CLIENT_QUEUE_FULL'
  | 'FST_CHANX_CLIENT_TIMEOUT'
  | 'FST_CHANX_CLIENT_DISCONNECTED'
  | 'FST_CHANX_CLIENT_CLOSED'
  | 'FST_CHANX_CLIENT_NO_WEBSOCKET'
  | 'FST_CHANX_CLIENT_ERROR_REPLY'
  | 'FST_CHANX_CLIENT_INVALID_OPTION'

/** Every other error of the client, told apart by `code`. */
export class ChanxClientError extends Error {
  constructor (readonly code: ClientErrorCode, message: string, readonly payload?: unknown) {
    super(message)
    this.name = 'ChanxClientError'
  }
}
