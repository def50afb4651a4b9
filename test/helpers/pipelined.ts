import { randomBytes } from 'node:crypto'
import { connect as tcpConnect } from 'node:net'
import type { FastifyInstance } from 'fastify'

/**
 * A raw TCP client that pipelines masked text frames right behind its upgrade request, before any answer
 * (no WebSocket client library can send that early). Resolves with everything the server wrote, as latin1,
 * once the server closed the connection or after a second. The app must be listening.
 */
export function pipelined (app: FastifyInstance, path: string, frames: string[]): Promise<string> {
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('the app is not listening on a port')
  return new Promise((resolve, reject) => {
    const socket = tcpConnect(address.port, '127.0.0.1')
    let response = ''
    const timer = setTimeout(() => { socket.destroy(); resolve(response) }, 1000)
    socket.on('data', (chunk) => { response += chunk.toString('latin1') })
    socket.on('close', () => { clearTimeout(timer); resolve(response) })
    socket.on('error', (err) => { clearTimeout(timer); socket.destroy(); reject(err) })
    socket.on('connect', () => {
      const request = `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${address.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`
      const encoded = frames.map((text) => {
        const payload = Buffer.from(text)
        const mask = randomBytes(4)
        const masked = Buffer.from(payload.map((byte, i) => byte ^ mask[i % 4]!))
        return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked])
      })
      socket.write(Buffer.concat([Buffer.from(request), ...encoded]))
    })
  })
}
