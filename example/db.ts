// The example's storage: users, rooms, memberships, messages and login sessions in SQLite (better-sqlite3).
// The file is created and seeded on first run; `DB_PATH=:memory:` keeps everything in memory.
import Database from 'better-sqlite3'
import type { Session } from 'fastify'
import type { SessionStore } from '@fastify/session'
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { randomBytes, scrypt, scryptSync, timingSafeEqual } from 'node:crypto'
import { promisify } from 'node:util'
import { availableParallelism } from 'node:os'

export interface User { id: number, username: string }
export interface Room { id: number, slug: string, name: string }
export interface ChatMessage { id: number, roomId: number, userId: number, username: string, text: string, createdAt: string }

const SEED_USERS = ['alice', 'bob', 'carol']
const SEED_ROOMS: Array<{ slug: string, name: string, members: string[] }> = [
  { slug: 'lobby', name: 'Lobby', members: ['alice', 'bob', 'carol'] },
  { slug: 'secret', name: 'Alice and Bob', members: ['alice', 'bob'] }
]

const scryptAsync = promisify(scrypt) as (password: string, salt: Buffer, length: number) => Promise<Buffer>

/** Only at seeding, before the server listens: a login never hashes on the event loop. */
function hashPassword (password: string): string {
  const salt = randomBytes(16)
  return `${salt.toString('hex')}:${scryptSync(password, salt, 32).toString('hex')}`
}

/**
 * At most this many hashes at once, leaving a core to the event loop: libuv's pool has 4 threads, and 4
 * hashes on a 2-core machine would still take the CPU from the sockets. Further logins wait their turn.
 */
const HASHING_SLOTS = Math.max(1, availableParallelism() - 1)
let hashing = 0
const waiting: Array<() => void> = []

/**
 * scrypt costs ~45 ms of CPU per attempt: the async form runs it on libuv's thread pool, so 20 logins at
 * once do not stall every socket's frames for the time of 20 hashes (scryptSync did: a ping took 470 ms).
 */
async function checkPassword (password: string, stored: string): Promise<boolean> {
  const [salt, hash] = stored.split(':')
  const expected = Buffer.from(hash!, 'hex')
  if (hashing >= HASHING_SLOTS) await new Promise<void>((resolve) => waiting.push(resolve))
  else hashing++
  try {
    const actual = await scryptAsync(password, Buffer.from(salt!, 'hex'), expected.length)
    return timingSafeEqual(actual, expected)
  } finally {
    // The slot passes to the next waiter as it is, or is given back.
    const next = waiting.shift()
    if (next === undefined) hashing--
    else next()
  }
}

/**
 * What a missing user's password is checked against: the same scrypt work as a wrong password, so the time
 * of a failed login does not tell whether the username exists (without it: 1.5 ms against 45 ms).
 */
const DUMMY_HASH = hashPassword(randomBytes(16).toString('hex'))

export type ChatStore = ReturnType<typeof openStore>

export function openStore (path: string) {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true })
  const db = new Database(path)
  db.pragma('journal_mode = WAL')
  db.pragma('foreign_keys = ON')
  db.exec(`
    CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, username TEXT UNIQUE NOT NULL, password TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS rooms (id INTEGER PRIMARY KEY, slug TEXT UNIQUE NOT NULL, name TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS memberships (
      room_id INTEGER NOT NULL REFERENCES rooms(id), user_id INTEGER NOT NULL REFERENCES users(id),
      PRIMARY KEY (room_id, user_id)
    );
    CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, data TEXT NOT NULL, expires INTEGER NOT NULL);
    CREATE INDEX IF NOT EXISTS sessions_expires ON sessions(expires);
    CREATE TABLE IF NOT EXISTS messages (
      id INTEGER PRIMARY KEY, room_id INTEGER NOT NULL REFERENCES rooms(id), user_id INTEGER NOT NULL REFERENCES users(id),
      text TEXT NOT NULL, created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
  `)

  const seeded = db.prepare('SELECT COUNT(*) AS n FROM users').get() as { n: number }
  if (seeded.n === 0) {
    db.transaction(() => {
      // Each seeded user's password is their name: this is a demo.
      const addUser = db.prepare('INSERT INTO users (username, password) VALUES (?, ?)')
      for (const name of SEED_USERS) addUser.run(name, hashPassword(name))
      const addRoom = db.prepare('INSERT INTO rooms (slug, name) VALUES (?, ?)')
      const addMember = db.prepare('INSERT INTO memberships (room_id, user_id) SELECT r.id, u.id FROM rooms r, users u WHERE r.slug = ? AND u.username = ?')
      for (const room of SEED_ROOMS) {
        addRoom.run(room.slug, room.name)
        for (const member of room.members) addMember.run(room.slug, member)
      }
    })()
  }

  const userById = db.prepare('SELECT id, username FROM users WHERE id = ?')
  const userByName = db.prepare('SELECT id, username, password FROM users WHERE username = ?')
  const roomBySlug = db.prepare('SELECT id, slug, name FROM rooms WHERE slug = ?')
  const roomsOfUser = db.prepare('SELECT r.id, r.slug, r.name FROM rooms r JOIN memberships m ON m.room_id = r.id WHERE m.user_id = ? ORDER BY r.id')
  const membership = db.prepare('SELECT 1 FROM memberships WHERE room_id = ? AND user_id = ?')
  const insertMessage = db.prepare('INSERT INTO messages (room_id, user_id, text) VALUES (?, ?, ?)')
  const messageById = db.prepare(`SELECT m.id, m.room_id AS roomId, m.user_id AS userId, u.username, m.text, m.created_at AS createdAt
    FROM messages m JOIN users u ON u.id = m.user_id WHERE m.id = ?`)
  const lastMessages = db.prepare(`SELECT * FROM (SELECT m.id, m.room_id AS roomId, m.user_id AS userId, u.username, m.text, m.created_at AS createdAt
    FROM messages m JOIN users u ON u.id = m.user_id WHERE m.room_id = ? ORDER BY m.id DESC LIMIT ?) ORDER BY id`)

  const sessionById = db.prepare('SELECT data FROM sessions WHERE id = ? AND expires > ?')
  const saveSession = db.prepare('INSERT INTO sessions (id, data, expires) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET data = excluded.data, expires = excluded.expires')
  const dropSession = db.prepare('DELETE FROM sessions WHERE id = ?')
  const dropExpiredSessions = db.prepare('DELETE FROM sessions WHERE expires <= ?')

  // @fastify/session's MemoryStore keeps every session until it is read again after expiring: a visitor who
  // never comes back stays in memory forever. This store keeps a session until its cookie expires, and
  // each save sweeps the expired ones, so it holds at most the sessions of the last cookie.maxAge.
  const sessions: SessionStore = {
    set (id, session, callback) {
      const expires = session.cookie.expires
      if (!(expires instanceof Date)) return callback(new Error('the example\'s session store needs cookie.maxAge: it keeps no session forever'))
      dropExpiredSessions.run(Date.now())
      saveSession.run(id, JSON.stringify(session), expires.getTime())
      callback()
    },
    get (id, callback) {
      const row = sessionById.get(id, Date.now()) as { data: string } | undefined
      callback(null, row === undefined ? null : JSON.parse(row.data) as Session)
    },
    destroy (id, callback) {
      dropSession.run(id)
      callback()
    }
  }

  return {
    sessions,
    userById: (id: number) => (userById.get(id) as User | undefined) ?? null,
    async login (username: string, password: string): Promise<User | null> {
      const row = userByName.get(username) as (User & { password: string }) | undefined
      const matches = await checkPassword(password, row?.password ?? DUMMY_HASH)
      if (row === undefined || !matches) return null
      return { id: row.id, username: row.username }
    },
    roomBySlug: (slug: string) => (roomBySlug.get(slug) as Room | undefined) ?? null,
    roomsOf: (userId: number) => roomsOfUser.all(userId) as Room[],
    isMember: (roomId: number, userId: number) => membership.get(roomId, userId) !== undefined,
    addMessage (roomId: number, userId: number, text: string): ChatMessage {
      const { lastInsertRowid } = insertMessage.run(roomId, userId, text)
      return messageById.get(lastInsertRowid) as ChatMessage
    },
    lastMessages: (roomId: number, limit: number) => lastMessages.all(roomId, limit) as ChatMessage[],
    close: (): void => { db.close() }
  }
}
