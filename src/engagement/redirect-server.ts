// The public redirect listener: GET /r/<token> answers 302 to the link the token stands for and
// records the click. It is the one part of the daemon meant to face the internet, so it runs on a
// listener of its own (BQ_PUBLIC_HOST, BQ_PUBLIC_PORT) that serves nothing else: no admin route,
// no metrics, no health, and the same plain 404 for every other path and every bad, forged or
// expired token, with nothing recorded.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { errorMessage, type Logger } from '../log.js';
import type { Tracking } from './tracking.js';

export type RedirectHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

const PATH = /^\/r\/([A-Za-z0-9_-]{1,64})$/;
/** The User-Agent of Telegram's link-preview fetcher ("TelegramBot (like TwitterBot)"). */
const PREVIEW_AGENT = /\bTelegramBot\b/i;
// No caching, so each follow reaches the listener and counts; no referrer, so the target does not
// learn the token; no indexing of the redirect pages.
const COMMON = { 'cache-control': 'no-store', 'referrer-policy': 'no-referrer', 'x-robots-tag': 'noindex', 'x-content-type-options': 'nosniff' };

function plain(res: http.ServerResponse, status: number, text: string): void {
  res.writeHead(status, { ...COMMON, 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) }).end(text);
}

const HEADER_SAFE = /^[\x21-\x7e]+$/;

/**
 * The Location header for a tracked URL. A message may link to what a header cannot carry
 * (Cyrillic domains and paths are common on Telegram, and a producer's line break would end the
 * header): Node's writeHead throws on those, so they go out in the form a browser requests anyway
 * (WHATWG URL: punycode host, percent-encoded path, tabs and line breaks dropped). An address
 * that is already plain ASCII is sent exactly as the message had it. Null when it does not parse.
 */
export function locationFor(url: string): string | null {
  if (HEADER_SAFE.test(url)) return url;
  try {
    const href = new URL(url).href;
    return HEADER_SAFE.test(href) ? href : null;
  } catch {
    return null;
  }
}

export function createRedirectHandler(tracking: Tracking, log: Logger): RedirectHandler {
  return (req, res) => {
    const path = (req.url ?? '').split('?', 1)[0]!;
    const match = PATH.exec(path);
    if (!match || (req.method !== 'GET' && req.method !== 'HEAD')) return plain(res, 404, 'Not found\n');
    // Telegram's link-preview fetcher follows every link of a message when it is sent: that is not
    // a recipient's click. A HEAD is no visit either. Both are redirected and not recorded.
    const visit = req.method === 'GET' && !PREVIEW_AGENT.test(String(req.headers['user-agent'] ?? ''));
    tracking.click(match[1]!, visit).then(
      (url) => {
        const location = url === null ? null : locationFor(url);
        if (location === null) return plain(res, 404, 'Not found\n');
        res.writeHead(302, { ...COMMON, location, 'content-length': 0 }).end();
      },
      (error: unknown) => {
        // The token is not logged: it names a recipient.
        log.warn({ err: errorMessage(error) }, 'tracked link not resolved: database unavailable');
        plain(res, 503, 'Service unavailable, try again\n');
      },
    ).catch((error: unknown) => {
      // Whatever goes wrong answering one click must not become an unhandled rejection, which
      // would end the daemon.
      log.error({ err: errorMessage(error) }, 'tracked link: answering the click failed');
      if (!res.headersSent) plain(res, 500, 'Internal error\n');
      else res.destroy();
    });
  };
}

export interface RedirectServer {
  port: number;
  close(): Promise<void>;
}

export async function startRedirectServer(handler: RedirectHandler, host: string, port: number): Promise<RedirectServer> {
  const server = http.createServer(handler);
  // Small requests, many clients: a slow client must not hold a socket for long.
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
