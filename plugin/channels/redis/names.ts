/**
 * Redis names for a hub channel (`g:<group>`, `u:<userKey>`, `r:<origin>`). Every name derived from one hub
 * channel carries it as a Redis Cluster hash tag, so its pub/sub channel and all of its keys (history,
 * presence) fall in one hash slot: a Lua script may then touch them together, and sharded pub/sub routes the
 * channel to the shard that holds the keys. Redis takes the tag from the first `{` to the first `}` after
 * it, and both forms below start with the same `{<channel>`, so they hash alike even when the channel
 * itself contains braces. The prefix must hold no brace (checked where the prefix is an option).
 */
export function redisName (prefix: string, channel: string, suffix?: string): string {
  return suffix === undefined ? `${prefix}{${channel}}` : `${prefix}{${channel}}:${suffix}`
}
