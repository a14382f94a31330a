// Dashboard sessions: a token typed once on the login page becomes a random session id in an
// HttpOnly, SameSite=Strict cookie (script cannot read it, other sites cannot send it), with a CSRF
// token of its own that every state-changing request must carry. Kept in memory: a daemon restart
// logs everyone out, which is the safe direction.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export type Role = 'admin' | 'read';

export interface Session {
  id: string;
  role: Role;
  csrf: string;
  expiresAt: number;
  /** What the last action did, shown once on the next page. */
  flash?: { kind: 'done' | 'error'; text: string };
}

export const COOKIE_NAME = 'bq_dashboard';
/** A session unused this long is forgotten. */
const IDLE_MS = 12 * 60 * 60 * 1000;
/** Logins beyond this push out the least recently used session, so a login loop cannot fill memory. */
const MAX_SESSIONS = 1_000;

const digest = (text: string) => createHash('sha256').update(text).digest();

/** Constant-time equality of two strings (hashed first, so lengths do not leak either). */
export function sameSecret(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected));
}

export class SessionStore {
  private readonly sessions = new Map<string, Session>();

  constructor(private readonly now: () => number = Date.now) {}

  create(role: Role): Session {
    while (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!);
    const session: Session = { id: randomBytes(32).toString('base64url'), role, csrf: randomBytes(24).toString('base64url'), expiresAt: this.now() + IDLE_MS };
    this.sessions.set(session.id, session);
    return session;
  }

  /** The session the request's cookie names, refreshed; null when none or expired. */
  fromRequest(req: IncomingMessage): Session | null {
    const id = readCookie(req, COOKIE_NAME);
    if (!id) return null;
    const session = this.sessions.get(id);
    if (!session) return null;
    this.sessions.delete(id);
    if (session.expiresAt <= this.now()) return null;
    session.expiresAt = this.now() + IDLE_MS;
    this.sessions.set(id, session); // re-inserted: the Map's order is least recently used first
    return session;
  }

  end(session: Session): void {
    this.sessions.delete(session.id);
  }
}

export function readCookie(req: IncomingMessage, name: string): string | null {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

export function sessionCookie(session: Session, path: string, secure: boolean): string {
  return `${COOKIE_NAME}=${session.id}; Path=${path}; HttpOnly; SameSite=Strict; Max-Age=${IDLE_MS / 1000}${secure ? '; Secure' : ''}`;
}

export function clearedCookie(path: string): string {
  return `${COOKIE_NAME}=; Path=${path}; HttpOnly; SameSite=Strict; Max-Age=0`;
}
