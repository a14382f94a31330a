// Reading an admin API request: its path and query, ids, limits and the optional JSON body.
import type { IncomingMessage } from 'node:http';
import { HttpError } from '../errors.js';

/** POST bodies are optional and small; anything larger is refused with 413. */
export const MAX_BODY_BYTES = 64 * 1024;
const MAX_ID = 2n ** 53n;

export function splitUrl(url: string | undefined): { path: string; query: URLSearchParams } {
  const raw = url || '/';
  const q = raw.indexOf('?');
  let path = q < 0 ? raw : raw.slice(0, q);
  // One trailing slash is forgiven (/status/ is /status); the mount point itself is '/'.
  if (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
  if (!path.startsWith('/')) path = `/${path}`;
  return { path, query: new URLSearchParams(q < 0 ? '' : raw.slice(q + 1)) };
}

export function parseId(segment: string, what: 'job' | 'broadcast'): number {
  let text: string;
  try {
    text = decodeURIComponent(segment);
  } catch {
    text = segment;
  }
  // Compared as a BigInt: Number() would round 2^53 + 1 down to 2^53 and let it through.
  const valid = /^[1-9][0-9]{0,15}$/.test(text) && BigInt(text) <= MAX_ID;
  if (!valid) throw new HttpError(400, `${what} id must be a positive integer, got ${JSON.stringify(truncate(text, 40))}`);
  return Number(text);
}

export function parseLimit(raw: string | null): number {
  if (raw === null || raw === '') return 50;
  if (!/^[0-9]{1,9}$/.test(raw) || Number(raw) < 1) throw new HttpError(400, `limit must be a whole number from 1 to 500, got ${JSON.stringify(truncate(raw, 40))}`);
  return Math.min(500, Number(raw));
}

/**
 * Reads an optional JSON object body (no route needs one today; a bad one is still refused, so
 * a client that sends one finds out). A body an Express parser already consumed is not read again.
 */
export async function readJsonBody(req: IncomingMessage): Promise<Record<string, unknown> | null> {
  const parsed = req as IncomingMessage & { _body?: boolean; body?: unknown };
  if (parsed._body || req.readableEnded) return isObject(parsed.body) ? parsed.body : null;
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) throw new HttpError(413, `the request body is larger than ${MAX_BODY_BYTES} bytes`, { connection: 'close' });
  const chunks: Buffer[] = [];
  let size = 0;
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        cleanup();
        reject(new HttpError(413, `the request body is larger than ${MAX_BODY_BYTES} bytes`, { connection: 'close' }));
      } else {
        chunks.push(chunk);
      }
    };
    const onEnd = () => {
      cleanup();
      resolve();
    };
    const onClose = () => {
      cleanup();
      reject(new HttpError(400, 'the request body ended early'));
    };
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onClose);
      req.off('aborted', onClose);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onClose);
    req.on('aborted', onClose);
  });
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return null;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new HttpError(400, 'the request body is not valid JSON');
  }
  if (!isObject(body)) throw new HttpError(400, 'the request body must be a JSON object');
  return body;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export const truncate = (s: string, n: number) => (s.length > n ? `${s.slice(0, n)}…` : s);
