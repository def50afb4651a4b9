// The fastify-chanx playground: plain JS, no build step, nothing from another host. It reads the AsyncAPI
// document the plugin generates, lists the socket routes, connects with the browser's cookies, and builds a
// payload skeleton for each action from its JSON Schema.
'use strict'
;(function () {
  const $ = function (id) { return document.getElementById(id) }
  let doc = null
  let current = null // { id, channel, actionKey, actions: [{ name, schema }] }
  let socket = null

  function pad (n, width) { return String(n).padStart(width || 2, '0') }
  function timestamp () {
    const d = new Date()
    return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds()) + '.' + pad(d.getMilliseconds(), 3)
  }

  /** Appends a line to the log: kind is 'in' (from the server), 'out' (sent) or 'info'. */
  function log (kind, text, isError) {
    const item = document.createElement('li')
    item.className = kind + (isError ? ' error' : '')
    const time = document.createElement('time')
    time.textContent = timestamp()
    const dir = document.createElement('span')
    dir.className = 'dir'
    dir.textContent = kind === 'in' ? '←' : kind === 'out' ? '→' : '•'
    const body = document.createElement('span')
    body.className = 'text'
    body.textContent = text
    item.append(time, dir, body)
    $('log').append(item)
    $('log').scrollTop = $('log').scrollHeight
  }

  function resolveRef (value) {
    let guard = 0
    while (value && typeof value === 'object' && typeof value.$ref === 'string' && value.$ref.indexOf('#/') === 0 && guard++ < 20) {
      let target = doc
      value.$ref.slice(2).split('/').forEach(function (part) {
        target = target == null ? undefined : target[part.replace(/~1/g, '/').replace(/~0/g, '~')]
      })
      value = target
    }
    return value
  }

  // ---------------------------------------------------------------------------------------------------
  // Payload skeletons from JSON Schema

  function skeleton (schema, depth) {
    schema = resolveRef(schema)
    if (!schema || typeof schema !== 'object' || depth > 12) return null
    if ('const' in schema) return schema.const
    if ('default' in schema) return schema.default
    if (Array.isArray(schema.examples) && schema.examples.length > 0) return schema.examples[0]
    if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum[0]
    const options = schema.anyOf || schema.oneOf
    if (Array.isArray(options) && options.length > 0) {
      const firstNotNull = options.filter(function (o) { o = resolveRef(o); return !(o && o.type === 'null') })[0]
      return skeleton(firstNotNull || options[0], depth + 1)
    }
    if (Array.isArray(schema.allOf)) {
      const merged = {}
      schema.allOf.forEach(function (part) {
        const value = skeleton(part, depth + 1)
        if (value && typeof value === 'object' && !Array.isArray(value)) Object.assign(merged, value)
      })
      return merged
    }
    let type = Array.isArray(schema.type) ? schema.type.filter(function (t) { return t !== 'null' })[0] : schema.type
    if (!type && schema.properties) type = 'object'
    switch (type) {
      case 'object': {
        const out = {}
        const properties = schema.properties || {}
        Object.keys(properties).forEach(function (key) { out[key] = skeleton(properties[key], depth + 1) })
        return out
      }
      case 'array': {
        const items = []
        let count = Math.max(schema.minItems || 0, 1)
        if (schema.maxItems === 0) count = 0
        for (let i = 0; i < count; i++) items.push(skeleton(Array.isArray(schema.items) ? schema.items[i] : schema.items, depth + 1))
        return items
      }
      case 'string': return stringSkeleton(schema)
      case 'integer':
      case 'number': return numberSkeleton(schema, type === 'integer')
      case 'boolean': return false
      case 'null': return null
      default: return null
    }
  }

  function stringSkeleton (schema) {
    if (schema.format === 'date-time') return new Date().toISOString()
    if (schema.format === 'date') return new Date().toISOString().slice(0, 10)
    if (schema.format === 'email') return 'user@example.com'
    if (schema.format === 'uuid') return '00000000-0000-4000-8000-000000000000'
    if (schema.format === 'uri') return 'https://example.com/'
    let text = 'string'
    const min = schema.minLength || 0
    while (text.length < min) text += text
    if (typeof schema.maxLength === 'number') text = text.slice(0, Math.max(schema.maxLength, min))
    return text
  }

  function numberSkeleton (schema, integer) {
    let value = 0
    if (typeof schema.minimum === 'number') value = schema.minimum
    else if (typeof schema.exclusiveMinimum === 'number') value = schema.exclusiveMinimum + (integer ? 1 : 0.5)
    else if (typeof schema.maximum === 'number' && schema.maximum < 0) value = schema.maximum
    else if (typeof schema.exclusiveMaximum === 'number' && schema.exclusiveMaximum <= 0) value = schema.exclusiveMaximum - 1
    if (integer) value = Math.ceil(value)
    if (typeof schema.multipleOf === 'number' && schema.multipleOf > 0) value = Math.ceil(value / schema.multipleOf) * schema.multipleOf
    return value
  }

  // ---------------------------------------------------------------------------------------------------
  // Routes

  function routeOf (id) {
    const channel = doc.channels[id]
    const route = channel['x-chanx-route'] || {}
    const actionKey = route.actionKey || 'action'
    const actions = []
    Object.keys(doc.operations || {}).forEach(function (opId) {
      const op = doc.operations[opId]
      if (op.action !== 'receive' || !op.channel || op.channel.$ref !== '#/channels/' + id) return
      ;(op.messages || []).forEach(function (ref) {
        const message = resolveRef(ref)
        const frame = message && resolveRef(message.payload)
        if (!frame || !frame.properties) return
        const tag = frame.properties[actionKey]
        const name = tag && 'const' in tag ? tag.const : message.name
        actions.push({ name, schema: frame.properties.payload || {} })
      })
    })
    return { id, channel, actionKey, actions }
  }

  function listRoutes () {
    const list = $('routes')
    list.textContent = ''
    Object.keys(doc.channels || {}).forEach(function (id) {
      const item = document.createElement('li')
      const button = document.createElement('button')
      button.type = 'button'
      button.dataset.channel = id
      button.textContent = doc.channels[id].address
      button.addEventListener('click', function () { selectRoute(id) })
      item.append(button)
      list.append(item)
    })
    if (list.children.length === 0) list.textContent = 'No socket routes are declared.'
  }

  function selectRoute (id) {
    if (socket) socket.close()
    current = routeOf(id)
    const channel = current.channel
    document.querySelectorAll('#routes button').forEach(function (b) { b.classList.toggle('selected', b.dataset.channel === id) })
    $('route-title').textContent = channel.address
    $('route-description').textContent = channel.description || ''
    const auth = []
    const send = Object.keys(doc.operations).map(function (k) { return doc.operations[k] })
      .filter(function (op) { return op.channel && op.channel.$ref === '#/channels/' + id && op.traits && Array.isArray(op.traits[0].security) })[0]
    if (send) {
      send.traits[0].security.forEach(function (ref) {
        const scheme = resolveRef(ref)
        if (scheme) auth.push(scheme.description || scheme.type)
      })
    }
    $('route-auth').textContent = auth.length ? 'Credentials: ' + auth.join(' · ') : ''
    const params = $('params')
    params.textContent = ''
    Object.keys(channel.parameters || {}).forEach(function (name) {
      const label = document.createElement('label')
      label.textContent = name + ' '
      const input = document.createElement('input')
      input.name = name
      input.dataset.param = name
      input.required = true
      input.autocomplete = 'off'
      input.title = channel.parameters[name].description || ''
      input.addEventListener('input', updateUrl)
      label.append(input)
      params.append(label)
    })
    const query = channel.bindings && channel.bindings.ws && channel.bindings.ws.query
    $('query').title = query && query.properties ? 'known parameters: ' + Object.keys(query.properties).join(', ') : ''
    const select = $('action')
    select.textContent = ''
    current.actions.forEach(function (action) {
      const option = document.createElement('option')
      option.value = action.name
      option.textContent = action.name
      select.append(option)
    })
    fillSkeleton()
    $('connect').disabled = false
    $('auth').hidden = true
    updateUrl()
  }

  function socketUrl () {
    let missing = false
    const path = current.channel.address.replace(/\{([^}]+)\}/g, function (_, name) {
      const input = document.querySelector('#params input[data-param="' + name + '"]')
      const value = input ? input.value : ''
      if (value === '') missing = true
      return name === 'wildcard' ? value.split('/').map(encodeURIComponent).join('/') : encodeURIComponent(value)
    })
    const query = $('query').value.trim().replace(/^\?/, '')
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:'
    return { url: scheme + '//' + location.host + path + (query ? '?' + query : ''), missing }
  }

  function updateUrl () {
    if (current) $('url').textContent = socketUrl().url
  }

  function fillSkeleton () {
    const name = $('action').value
    const action = current && current.actions.filter(function (a) { return a.name === name })[0]
    if (!action) { $('message').value = ''; return }
    const message = {}
    message[current.actionKey] = action.name
    message.payload = skeleton(action.schema, 0)
    $('message').value = JSON.stringify(message, null, 2)
    $('send-error').textContent = ''
  }

  // ---------------------------------------------------------------------------------------------------
  // The connection

  function setStatus (state, text) {
    $('status').dataset.state = state
    $('status').textContent = text
  }

  /**
   * Connects through fastify-chanx/client (client.js, loaded before this file): the client reads the
   * authentication message, and a refusal comes back as its typed refusal. The playground never
   * reconnects by itself: it shows what happened and waits for the next click.
   */
  function connect (event) {
    event.preventDefault()
    if (!current) return
    const target = socketUrl()
    if (target.missing) { log('info', 'fill every path param first', true); return }
    if (socket) socket.close()
    delete $('status').dataset.closeCode
    $('auth').hidden = true
    log('info', 'connecting to ' + target.url)
    setStatus('connecting', 'connecting')
    const route = current
    const client = window.ChanxClient.createClient(target.url, {
      actionKey: route.actionKey,
      policy: function () { return { action: 'stop' } }
    })
    socket = client
    // Before the first 'open', a close ends connect(): its rejection says why (the refusal), so it reports.
    let opened = false
    $('disconnect').disabled = false
    client.on('open', function () {
      if (socket !== client) return
      opened = true
      showAuthentication({ status_code: 200, status_text: 'OK', data: { detail: 'OK' } })
      log('in', JSON.stringify({ [route.actionKey]: 'authentication', payload: { status_code: 200, status_text: 'OK', data: { detail: 'OK' } } }))
      setStatus('open', 'connected')
      $('send').disabled = false
      log('info', 'connected')
    })
    client.on('message', function (message) {
      if (socket !== client) return
      log('in', JSON.stringify(message), message !== null && typeof message === 'object' && message[route.actionKey] === 'error')
    })
    client.on('closed', function (info) { if (opened) closed(client, info.code, info.reason) })
    client.connect().catch(function (refusal) {
      if (socket !== client) return
      if (refusal && refusal.status > 0) {
        showAuthentication({ status_code: refusal.status, status_text: refusal.statusText, data: { detail: refusal.detail } })
        log('in', 'refused: ' + refusal.status + ' ' + refusal.statusText + ': ' + refusal.detail, true)
      }
      closed(client, refusal && refusal.closeCode ? refusal.closeCode : 1006, '')
    })
  }

  function closed (client, code, reason) {
    if (socket !== client) return
    socket = null
    $('status').dataset.closeCode = String(code)
    setStatus('closed', 'closed (' + code + (reason ? ' ' + reason : '') + ')')
    $('send').disabled = true
    $('disconnect').disabled = true
    log('info', 'closed with code ' + code + (reason ? ' (' + reason + ')' : ''), code !== 1000)
  }

  function showAuthentication (payload) {
    $('auth').hidden = false
    const ok = payload.status_code === 200
    $('auth-status').className = ok ? 'ok' : 'refused'
    $('auth-status').textContent = payload.status_code + ' ' + (payload.status_text || '')
    $('auth-status').dataset.statusCode = String(payload.status_code)
    const detail = payload.data && typeof payload.data === 'object' && 'detail' in payload.data ? payload.data.detail : JSON.stringify(payload.data)
    $('auth-detail').textContent = detail
  }

  function send (event) {
    event.preventDefault()
    if (!socket || $('send').disabled) return
    let frame
    try {
      frame = JSON.parse($('message').value)
    } catch (err) {
      $('send-error').textContent = 'not valid JSON: ' + err.message
      return
    }
    if (frame === null || typeof frame !== 'object' || Array.isArray(frame)) {
      $('send-error').textContent = 'a frame is a JSON object: { "' + current.actionKey + '": ..., "payload": ... }'
      return
    }
    $('send-error').textContent = ''
    socket.send(frame[current.actionKey], frame.payload)
    log('out', JSON.stringify({ [current.actionKey]: frame[current.actionKey], payload: frame.payload }))
  }

  // ---------------------------------------------------------------------------------------------------

  $('connect-form').addEventListener('submit', connect)
  $('send-form').addEventListener('submit', send)
  $('disconnect').addEventListener('click', function () {
    const client = socket
    if (!client) return
    client.close()
    closed(client, 1000, '')
  })
  $('action').addEventListener('change', fillSkeleton)
  $('skeleton').addEventListener('click', fillSkeleton)
  $('query').addEventListener('input', updateUrl)
  $('clear').addEventListener('click', function () { $('log').textContent = '' })

  fetch(document.body.dataset.document, { credentials: 'same-origin' })
    .then(function (response) {
      if (!response.ok) throw new Error('HTTP ' + response.status)
      return response.json()
    })
    .then(function (json) {
      doc = json
      $('title').textContent = (doc.info && doc.info.title ? doc.info.title : 'fastify-chanx') + ' playground'
      $('doc-status').textContent = 'AsyncAPI ' + doc.asyncapi + ' · version ' + (doc.info && doc.info.version)
      document.body.dataset.ready = 'true'
      listRoutes()
    })
    .catch(function (err) {
      $('doc-status').textContent = 'could not load the AsyncAPI document: ' + err.message
    })
})()
