/** The document as YAML: a small writer for plain JSON values, so no YAML library is needed. */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json }
export type JsonObject = { [key: string]: Json }

const RESERVED = /^(?:true|false|yes|no|on|off|y|n|null|~|[-+]?(?:\.inf|\.nan))$/i
const NUMBERLIKE = /^[-+]?(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?$|^0[xob]/i

/** A string as a YAML scalar: plain when it cannot be read as anything else, else double-quoted (JSON's escapes are YAML's). */
function yamlString (text: string): string {
  if (text === '' || RESERVED.test(text) || NUMBERLIKE.test(text) || !/^[A-Za-z0-9_./$(][\w ./$(),'=+<>-]*$/.test(text) ||
    text.endsWith(' ') || text.includes(': ') || text.includes(' #')) {
    return JSON.stringify(text)
  }
  return text
}

function yamlScalar (value: Json): string | null {
  if (value === null) return 'null'
  if (typeof value === 'boolean') return value ? 'true' : 'false'
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : 'null'
  if (typeof value === 'string') return yamlString(value)
  if (Array.isArray(value) && value.length === 0) return '[]'
  if (!Array.isArray(value) && Object.keys(value).length === 0) return '{}'
  return null
}

function yamlLines (value: Json, indent: string, lines: string[]): void {
  if (Array.isArray(value)) {
    for (const item of value) {
      const scalar = yamlScalar(item)
      if (scalar !== null) { lines.push(`${indent}- ${scalar}`); continue }
      const nested: string[] = []
      yamlLines(item, indent + '  ', nested)
      // The first line of a nested block goes on the dash's line.
      lines.push(`${indent}- ${nested[0]!.slice(indent.length + 2)}`, ...nested.slice(1))
    }
    return
  }
  for (const [key, item] of Object.entries(value as JsonObject)) {
    const scalar = yamlScalar(item)
    if (scalar !== null) lines.push(`${indent}${yamlString(key)}: ${scalar}`)
    else {
      lines.push(`${indent}${yamlString(key)}:`)
      yamlLines(item, indent + '  ', lines)
    }
  }
}

/** JSON-compatible data as block-style YAML 1.2. */
export function toYaml (value: unknown): string {
  const json = JSON.parse(JSON.stringify(value)) as Json
  const scalar = yamlScalar(json)
  if (scalar !== null) return scalar + '\n'
  const lines: string[] = []
  yamlLines(json, '', lines)
  return lines.join('\n') + '\n'
}
