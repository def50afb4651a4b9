import type { ChanxAuthenticator } from '../auth/authenticator'
import type { ChannelHub } from '../channels/hub'
import { SharedFrame } from '../core/frame'
import type { UserKeyFunction } from '../core/identity'
import type { MessageRouter } from '../messages/compile'
import type { ConnectionGuard } from './guard'

/** What every connection of one route shares, fixed at registration. */
export interface ConnectionRoute {
  readonly authenticator: ChanxAuthenticator<unknown, unknown>
  readonly sendAuthenticationMessage: boolean
  readonly reauthenticateInterval: number
  /** How long one re-authentication may take before it counts as a refusal (4503). */
  readonly reauthenticateTimeout: number
  readonly maxQueuedFrames: number
  readonly maxQueuedBytes: number
  readonly router: MessageRouter | null
}

export interface ConnectionServices {
  readonly guard: ConnectionGuard
  readonly hub: ChannelHub
  readonly userKey: UserKeyFunction
}

/** The route's and the plugin's, made once per route (handshake/hook.ts) and shared by its connections. */
export interface ConnectionScope {
  readonly route: ConnectionRoute
  readonly services: ConnectionServices
}

/** A server-side close the peer does not complete is cut this long after (ws itself waits 30 s). */
export const CLOSE_GRACE = 2000

/** Each router's `group_complete`, framed once for all its sockets. */
const completions = new WeakMap<MessageRouter, SharedFrame>()

export function completionOf (router: MessageRouter): SharedFrame {
  let frame = completions.get(router)
  if (frame === undefined) {
    frame = new SharedFrame(router.replies.groupComplete)
    completions.set(router, frame)
  }
  return frame
}
