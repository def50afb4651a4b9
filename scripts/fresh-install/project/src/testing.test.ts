// fastify-chanx/testing on the newest dependencies our ranges allow, as the README's Testing section shows it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { closeApp, connect, connectMany } from 'fastify-chanx/testing'
import { buildApp, tokenFor } from './app.js'

test('the README\'s testing helpers: handshake, actions, replies, a broadcast, a refusal', async () => {
  const app = await buildApp()
  await app.ready()
  try {
    const alice = await connect(app, '/ws/rooms/lobby', { query: { token: tokenFor(app, 'alice') }, timeout: 2000 })
    assert.deepEqual(await alice.authentication(), { status_code: 200, status_text: 'OK', data: { detail: 'OK' } })
    const [bob, anonymous] = await connectMany(app, [
      { path: '/ws/rooms/lobby', headers: { authorization: `Bearer ${tokenFor(app, 'bob')}` } },
      { path: '/ws/rooms/lobby' }
    ])
    assert.equal((await bob!.authentication()).status_code, 200)
    assert.equal((await anonymous!.authentication()).status_code, 401, 'no token: 401, the JWT authenticator has a challenge')
    assert.equal(await anonymous!.closed(), 4401, 'an injectWS refusal: the authentication message, then 4401')

    alice.sendAction('move', { x: 3 })
    assert.deepEqual(await alice.receiveUntil('complete'), [
      { action: 'moved', payload: { x: 3 } },
      { action: 'complete', payload: null }
    ])
    alice.sendAction('chat', { text: 'hi' })
    const chat = { action: 'chat', payload: { text: 'hi', from: 'alice' } }
    assert.deepEqual(await bob!.receive(), { ...chat, is_mine: false, is_current: false })
    assert.deepEqual(await alice.receiveUntil('complete'), [{ action: 'complete', payload: null }], 'excludeSelf: not to alice herself')

    // validateOutgoing checks broadcasts too: this one breaks `outgoing`, so it is refused, and nobody gets it.
    alice.sendAction('shout', { text: '5' })
    assert.deepEqual(await alice.receiveUntil('complete'), [
      { action: 'error', payload: { detail: 'Failed to process message' } },
      { action: 'complete', payload: null }
    ])
    alice.sendAction('move', { x: 4 })
    await alice.receiveUntil('complete')
    bob!.sendAction('move', { x: 5 })
    const toBob = await bob!.receiveUntil('complete')
    assert.deepEqual(toBob.filter((message) => message.action === 'notice'), [], 'the refused broadcast reached nobody')
    assert.deepEqual(toBob.slice(-2), [{ action: 'moved', payload: { x: 5 } }, { action: 'complete', payload: null }])
  } finally {
    await closeApp(app)
  }
})

test('an upgrade refused with its HTTP status (rejectUpgrade) rejects connect with that status (401: the JWT authenticator has a challenge)', async () => {
  const app = await buildApp()
  await app.ready()
  try {
    await assert.rejects(connect(app, '/ws/strict'), /Unexpected server response: 401/)
  } finally {
    await closeApp(app)
  }
})

test('connect makes an app that is not ready yet ready itself', async () => {
  const app = await buildApp()
  try {
    const client = await connect(app, '/ws/rooms/lobby', { query: { token: tokenFor(app, 'carol') } })
    assert.equal((await client.authentication()).status_code, 200)
  } finally {
    await closeApp(app)
  }
})

test('ws enforces the 64 KiB frame cap fastify-chanx sets (1009) and replies keep their order', async () => {
  const app = await buildApp()
  await app.ready()
  try {
    const client = await connect(app, '/ws/rooms/lobby', { query: { token: tokenFor(app, 'dave') } })
    await client.authentication()
    for (let x = 0; x < 200; x++) client.sendAction('move', { x })
    for (let x = 0; x < 200; x++) {
      assert.deepEqual(await client.receive(), { action: 'moved', payload: { x } })
      assert.deepEqual(await client.receive(), { action: 'complete', payload: null })
    }
    client.send('x'.repeat(64 * 1024 + 1))
    assert.equal(await client.closed(), 1009)
  } finally {
    await closeApp(app)
  }
})
