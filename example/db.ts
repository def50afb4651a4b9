// The example's storage: users, rooms, memberships, messages and login sessions in SQLite (better-sqlite3).
// The file is created and seeded on first run; `DB_PATH=:memory:` keeps everything in memory.
import Database from 'better-sqlite3'
import type { Session } from 'fastify'
import type { SessionStore } from '@fastify/session'
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { randomBytes, scryptSync, timingSafeEqual } from 'node:crypto'

export interface User { id: number, username: string }
export interface Room { id: number, slug: string, name: string }
export interface ChatMessage { id: number, roomId: number, userId: number, username: string, text: string, createdAt: string }

const SEED_USERS = ['alice', 'bob', 'carol']
const SEED_ROOMS: Array<{ slug: string, name: string, members: string[] }> = [
  { slug: 'lobby', name: 'Lobby', members: ['alice', 'bob', 'carol'] },
  { slug: 'secret', name: 'Alice and Bob', members: ['alice', 'bob'] }
]

function hashPassword (password: string): string {
  const salt = randomBytes(16)
  return `${salt.toString('hex')}:${scryptSync(password, salt, 32).toString('hex')}`
}

function checkPassword (password: string, stored: string): boolean {
  const [salt, hash] = stored.split(':')
  const expected = Buffer.from(hash!, 'hex')
  const actual = scryptSync(password, Buffer.from(salt!, 'hex'), expected.length)
  return timingSafeEqual(actual, expected)
}

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
    login (username: string, password: string): User | null {
      const row = userByName.get(username) as (User & { password: string }) | undefined
      if (row === undefined || !checkPassword(password, row.password)) return null
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
