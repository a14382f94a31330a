// Writing an admin API answer: JSON, never cached, cut where a stored value nests too deep.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError } from '../errors.js';

export function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const json = safeJson(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'content-length': Buffer.byteLength(json),
    ...headers,
  });
  res.end(json);
}

/** A guard (guard.ts) as a (req, res) check for handlers outside the admin router (/metrics). */
export function guardedBy(guard: (req: IncomingMessage) => void): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    try {
      guard(req);
      return true;
    } catch (error) {
      if (!(error instanceof HttpError)) throw error;
      send(res, error.status, { error: error.message }, error.headers);
      return false;
    }
  };
}

/**
 * JSON for a response. A job payload nested thousands deep (PostgreSQL accepts it) overflows
 * JSON.stringify's stack; past 64 levels a value is shown as a marker instead (chaos suite: a 500).
 */
function safeJson(body: unknown): string {
  return JSON.stringify(cutDeep(body, 64));
}

function cutDeep(value: unknown, levelsLeft: number): unknown {
  if (typeof value !== 'object' || value === null || value instanceof Date) return value;
  if (levelsLeft <= 0) return '[nested too deeply to show]';
  if (Array.isArray(value)) return value.map((v) => cutDeep(v, levelsLeft - 1));
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, cutDeep(v, levelsLeft - 1)]));
}
