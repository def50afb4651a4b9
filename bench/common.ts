/** What the harness and the server variants share: the JWT secret and cookie name. */
export const SECRET = 'benchmark-secret-of-at-least-32-characters!'
export const COOKIE = 'token'
