import type { AsyncApiOptions, PlaygroundOptions } from './asyncapi/options'
import type { PluginDefaultOptions } from './handshake/plugin-options'

/** Plugin options: defaults for every route that sets none (DRF's DEFAULT_* settings), the channels, and what the plugin serves. */
export interface FastifyChanxOptions extends PluginDefaultOptions {
  /** Serve the AsyncAPI document as JSON and YAML (off unless set): `{ path: '/asyncapi', info: { title, version } }`. */
  asyncapi?: AsyncApiOptions
  /** Serve the playground page (off unless set): `{ path: '/chanx/playground' }`. */
  playground?: PlaygroundOptions
}
