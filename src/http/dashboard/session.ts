// Dashboard sessions: a token typed once on the login page becomes a signed cookie (HttpOnly, so
// script cannot read it; SameSite=Strict, so other sites cannot send it) carrying the role, the
// expiry, the login time and a random nonce, with an HMAC over them keyed from the configured
// tokens. Nothing is kept in memory: a session survives a daemon restart and works on every daemon
// behind one address configured with the same tokens, and changing a token ends every session.
// The cookie holds no secret: not the token (only a key derived from it signs), and not the CSRF
// token either, which is an HMAC of the nonce (so a cookie planted by a sibling subdomain still
// needs its page's token).
import { createHash, createHmac, randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export type Role = 'admin' | 'read';

export interface Session {
  role: Role;
  /** The token every state-changing request must carry (pages have it in a meta tag and their forms). */
  csrf: string;
  /** Epoch ms. */
  expiresAt: number;
}

export type Notice = { kind: 'done' | 'error'; text: string };

export const COOKIE_NAME = 'bq_dashboard';
/** What the last action did, shown once on the next page: signed too, so no other page can plant one. */
export const NOTICE_COOKIE = 'bq_dashboard_notice';
/** A session unused this long ends (each page renews it, at most every RENEW_MS). */
const IDLE_MS = 12 * 60 * 60 * 1000;
const RENEW_MS = 5 * 60 * 1000;
/**
 * However often it is used, a session ends this long after its login: renewal keeps the nonce, so
 * without a cap a copied cookie (which logging out cannot revoke) would live for ever.
 */
export const MAX_SESSION_MS = 7 * 24 * 60 * 60 * 1000;

const digest = (text: string) => createHash('sha256').update(text).digest();

/** Constant-time equality of two strings (hashed first, so lengths do not leak either). */
export function sameSecret(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected));
}

/** Role, expiry (epoch ms), login time (epoch ms, kept across renewals), nonce. */
interface Claims { r: Role; e: number; i: number; n: string }

export interface SessionCookieOptions {
  path: string;
  secure: boolean;
}

export class SessionKeeper {
  private readonly key: Buffer;

  /**
   * `tokens`: the admin and read-only tokens (either may be absent). With neither (the local-only
   * mode) the key is random: sessions then last as long as the process, and every local caller
   * gets one anyway.
   */
  constructor(tokens: (string | undefined)[], private readonly cookie: SessionCookieOptions, private readonly now: () => number = Date.now) {
    // scrypt, not a plain hash: a cookie read off a disk would otherwise let a short token be guessed offline fast.
    this.key = tokens.some((t) => t !== undefined)
      ? scryptSync(JSON.stringify(tokens.map((t) => t ?? null)), 'bq-dashboard-session-v1', 32)
      : randomBytes(32);
  }

  private sign(kind: string, body: string): string {
    return createHmac('sha256', this.key).update(`${kind}\0${body}`).digest('base64url');
  }

  private session(claims: Claims): Session {
    return { role: claims.r, csrf: this.sign('csrf', claims.n), expiresAt: claims.e };
  }

  private cookieFor(claims: Claims): string {
    const body = Buffer.from(JSON.stringify(claims)).toString('base64url');
    const maxAgeSeconds = Math.max(0, Math.ceil((claims.e - this.now()) / 1000));
    return `${COOKIE_NAME}=${body}.${this.sign('session', body)}; ${this.attributes(maxAgeSeconds)}`;
  }

  private attributes(maxAgeSeconds: number): string {
    return `Path=${this.cookie.path}; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSeconds}${this.cookie.secure ? '; Secure' : ''}`;
  }

  /** A new session and its Set-Cookie value. */
  issue(role: Role): { session: Session; setCookie: string } {
    const now = this.now();
    const claims: Claims = { r: role, e: now + IDLE_MS, i: now, n: randomBytes(18).toString('base64url') };
    return { session: this.session(claims), setCookie: this.cookieFor(claims) };
  }

  /**
   * The session the request's cookie carries, when its signature holds and it has not expired;
   * with a renewed cookie when the last renewal is RENEW_MS old (same nonce, so open tabs keep
   * their CSRF token), never past MAX_SESSION_MS after the login. A cookie without a login time
   * (made before sessions had one) is refused: its age cannot be known.
   */
  fromRequest(req: IncomingMessage): { session: Session; setCookie?: string } | null {
    const claims = this.verified(readCookie(req, COOKIE_NAME), 'session');
    if (!claims || (claims.r !== 'admin' && claims.r !== 'read') || typeof claims.e !== 'number' || typeof claims.i !== 'number' || typeof claims.n !== 'string') return null;
    const now = this.now();
    const end = claims.i + MAX_SESSION_MS;
    if (claims.e <= now || end <= now) return null;
    const expiry = Math.min(now + IDLE_MS, end);
    if (expiry - claims.e < RENEW_MS) return { session: this.session(claims) };
    const renewed = { ...claims, e: expiry };
    return { session: this.session(renewed), setCookie: this.cookieFor(renewed) };
  }

  private verified(value: string | null, kind: string): Claims | null {
    if (!value) return null;
    const dot = value.indexOf('.');
    if (dot <= 0) return null;
    const body = value.slice(0, dot);
    if (!sameSecret(value.slice(dot + 1), this.sign(kind, body))) return null;
    try {
      return JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
    } catch {
      return null;
    }
  }

  /** The Set-Cookie that carries a notice to the next page (for a minute at most). */
  noticeCookie(notice: Notice): string {
    const body = Buffer.from(JSON.stringify(notice)).toString('base64url');
    return `${NOTICE_COOKIE}=${body}.${this.sign('notice', body)}; ${this.attributes(60)}`;
  }

  /** The notice the request carries, if signed here; the page that shows it clears it (clearedNotice). */
  notice(req: IncomingMessage): Notice | null {
    const n = this.verified(readCookie(req, NOTICE_COOKIE), 'notice') as unknown as Notice | null;
    return n && (n.kind === 'done' || n.kind === 'error') && typeof n.text === 'string' ? n : null;
  }

  clearedNotice(): string {
    return `${NOTICE_COOKIE}=; ${this.attributes(0)}`;
  }

  /**
   * Logging out clears the cookie; a copy taken before still works until it expires (idle, or
   * MAX_SESSION_MS after its login at the latest) or a token changes.
   */
  cleared(): string {
    return `${COOKIE_NAME}=; ${this.attributes(0)}`;
  }
}

export function readCookie(req: IncomingMessage, name: string): string | null {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}
