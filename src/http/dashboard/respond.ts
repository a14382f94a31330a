// Writing dashboard answers: HTML under a strict Content-Security-Policy, redirects, and the
// request body of a form.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError } from '../../errors.js';
import type { Html } from './html.js';

/**
 * Only this package's own script and style files run: no inline script or style, nothing from
 * another origin, no framing, forms post only here. Escaping is the first defence; this is the second.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "connect-src 'self'",
  "form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'",
].join('; ');

export const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  // Not no-referrer: with it Chromium sends Origin: null on form posts, and the login checks Origin.
  'referrer-policy': 'same-origin',
  'cache-control': 'no-store',
};

export function sendHtml(res: ServerResponse, status: number, page: Html, headers: Record<string, string | string[]> = {}): void {
  const body = page.text;
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

export function redirect(res: ServerResponse, location: string, headers: Record<string, string | string[]> = {}): void {
  res.writeHead(303, { ...SECURITY_HEADERS, location, 'content-length': 0, ...headers });
  res.end();
}

const MAX_FORM_BYTES = 16 * 1024;

/** An application/x-www-form-urlencoded body (what the dashboard's forms send), of at most `maxBytes`. */
export async function readForm(req: IncomingMessage, maxBytes = MAX_FORM_BYTES): Promise<URLSearchParams> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== '' && type !== 'application/x-www-form-urlencoded') throw new HttpError(415, 'dashboard forms are sent as application/x-www-form-urlencoded');
  if (Number(req.headers['content-length'] ?? 0) > maxBytes) throw new HttpError(413, `the form is larger than ${maxBytes} bytes`, { connection: 'close' });
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw new HttpError(413, `the form is larger than ${maxBytes} bytes`, { connection: 'close' });
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}
