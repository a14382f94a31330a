// Who may call the admin API and /metrics. There are exactly two ways in:
//   - a bearer token (apiToken), compared in constant time; or
//   - no token, which the caller must ask for (allowUnauthenticated), and which then answers only a
//     local program: a loopback peer, no proxy in between, a loopback Host, no foreign Origin, and
//     POSTs a web page cannot forge. Being on 127.0.0.1 is not enough by itself: any page the
//     operator's browser opens can POST a form to 127.0.0.1 (no Origin check lets it cancel a
//     broadcast), and DNS rebinding points a foreign name at 127.0.0.1 to read the answers.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isLoopback } from '../config/load.js';
import { HttpError } from '../errors.js';

export interface GuardOptions {
  /** Bearer token every request must carry. */
  apiToken?: string;
  /** With no apiToken: answer local callers without one. Never implied. */
  allowUnauthenticated?: boolean;
}

/** Throws HttpError (401, 403 or 415) unless the request may go on. */
export type RequestGuard = (req: IncomingMessage) => void;

export function requestGuard(options: GuardOptions, what = 'the admin API'): RequestGuard {
  if (options.apiToken !== undefined) return bearerCheck(options.apiToken);
  if (options.allowUnauthenticated !== true) {
    throw new Error(`${what} needs an apiToken (then every request must carry it), or allowUnauthenticated: true to answer local callers without one`);
  }
  return localOnly;
}

/**
 * 401 unless the Authorization header carries the token. Both sides are hashed first, so
 * timingSafeEqual always compares equal-length buffers and the token's length does not leak either.
 */
function bearerCheck(apiToken: string): RequestGuard {
  if (typeof apiToken !== 'string' || apiToken.trim() === '') throw new Error('apiToken must be a non-empty string (or left out, with allowUnauthenticated: true, to serve local callers without a token)');
  const expected = createHash('sha256').update(apiToken).digest();
  return (req) => {
    const header = req.headers.authorization ?? '';
    const given = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header)?.[1];
    if (given !== undefined && timingSafeEqual(createHash('sha256').update(given).digest(), expected)) return;
    const challenge = given === undefined ? 'Bearer realm="broadcast-queued"' : 'Bearer realm="broadcast-queued", error="invalid_token"';
    throw new HttpError(401, given === undefined ? 'a bearer token is required (Authorization: Bearer <BQ_API_TOKEN>)' : 'the bearer token is not valid', { 'www-authenticate': challenge });
  };
}

// A proxy on the same machine makes every caller look local; these headers say one is there.
const PROXY_HEADERS = ['forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-real-ip'];

function localOnly(req: IncomingMessage): void {
  const peer = req.socket?.remoteAddress ?? '';
  if (!isLoopback(peer.replace(/^::ffff:/i, ''))) throw refused('answers only callers on this machine');
  if (PROXY_HEADERS.some((h) => req.headers[h] !== undefined)) throw refused('does not answer requests relayed by a proxy');
  const host = req.headers.host;
  // HTTP/1.1 requires Host; a browser always sends it, so a request without one is no rebinding.
  if (host !== undefined && !isLoopback(hostName(host))) throw refused(`does not answer for Host ${JSON.stringify(host.slice(0, 100))} (only localhost, 127.0.0.1 or [::1])`);
  const origin = req.headers.origin;
  if (origin !== undefined && !sameOrigin(origin, host)) throw refused(`does not answer web pages from other origins (Origin ${JSON.stringify(origin.slice(0, 100))})`);
  if (req.headers['sec-fetch-site'] === 'cross-site') throw refused('does not answer cross-site requests');
  const method = req.method ?? 'GET';
  if (method !== 'GET' && method !== 'HEAD' && !jsonOrCustom(req)) {
    // A form or a no-cors fetch can only send text/plain, urlencoded or multipart bodies, and no
    // custom headers; anything else makes the browser ask first (CORS preflight), which goes unanswered.
    throw new HttpError(415, `without a token, ${method} requests must be sent with Content-Type: application/json (or an X-Requested-With header), so that no web page can send them`);
  }
}

const refused = (why: string) => new HttpError(403, `this admin API has no token, so it ${why}; set BQ_API_TOKEN (apiToken) to serve anyone else`);

/** The name in a Host header, without port or IPv6 brackets, lower-cased. */
function hostName(host: string): string {
  const h = host.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') < 0 ? undefined : h.indexOf(']'));
  return h.replace(/:\d*$/, '').replace(/\.$/, '');
}

function sameOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined) return false;
  try {
    const url = new URL(origin);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.host === new URL(`http://${host}`).host;
  } catch {
    return false; // 'null' (sandboxed frames, file://) and anything unparsable
  }
}

function jsonOrCustom(req: IncomingMessage): boolean {
  if (req.headers['x-requested-with'] !== undefined) return true;
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  return type === 'application/json';
}
