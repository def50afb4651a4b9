/**
 * Chanx's wire format. The strings built here carry the same JSON values as the Python library's, with the
 * same key order, so a client written for Chanx reads ours unchanged. Not the same bytes: Chanx writes
 * Python's `json.dumps` (`", "` separators, `\uXXXX` escapes), we write compact JSON (README "Differences from Chanx").
 */

const STATUS_TEXT: Readonly<Record<number, string>> = {
  200: 'OK',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable'
}

export function statusText (statusCode: number): string {
  return STATUS_TEXT[statusCode] ?? 'Error'
}

/** Refused sockets close with 4000 + the HTTP status, so a browser can read the status from the close event. */
export function refusalCloseCode (statusCode: number): number {
  const code = 4000 + statusCode
  return code >= 4000 && code <= 4999 ? code : 4500
}

/** RFC 6455 caps a close frame's reason at 123 bytes, and ws throws past it: a longer text is cut. */
const MAX_CLOSE_REASON_BYTES = 123

/** The close reason for a status text: itself when it fits a close frame, else cut to 123 UTF-8 bytes. */
export function closeReason (text: string): string {
  if (Buffer.byteLength(text) <= MAX_CLOSE_REASON_BYTES) return text
  let reason = text.slice(0, MAX_CLOSE_REASON_BYTES)
  while (Buffer.byteLength(reason) > MAX_CLOSE_REASON_BYTES) reason = reason.slice(0, -1)
  return reason
}

/** The payload of the `authentication` message, as a client reads it. */
export interface AuthenticationPayload {
  status_code: number
  status_text: string
  data: unknown
}

export function authenticationMessage (statusCode: number, text: string, data: unknown): string {
  return '{"action":"authentication","payload":{"status_code":' + statusCode +
    ',"status_text":' + JSON.stringify(text) +
    ',"data":' + JSON.stringify(data ?? null) + '}}'
}

/** Sent on every successful handshake with the default result: built once. */
export const AUTHENTICATION_OK_MESSAGE = authenticationMessage(200, 'OK', { detail: 'OK' })

export const DETAIL_NOT_AUTHENTICATED = 'Authentication credentials were not provided.'
export const DETAIL_PERMISSION_DENIED = 'You do not have permission to perform this action.'
export const DETAIL_NOT_FOUND = 'Not found.'
export const DETAIL_INTERNAL_ERROR = 'Internal server error'

// Replies of the message router (DESIGN "Messages after the handshake")
export const DETAIL_INVALID_JSON = 'Invalid JSON'
export const DETAIL_BINARY = 'Binary frames are not accepted'
export const DETAIL_HANDLER_FAILED = 'Failed to process message'
export const DETAIL_RATE_LIMITED = 'Rate limit exceeded'
