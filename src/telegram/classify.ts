// The Bot API error taxonomy. Everything that decides "retry, drop the
// recipient, or give up on the content" for a failed send goes through here,
// so the rules live in one pure function that is tested against real telegraf
// errors produced by the fake server.

export type DeliveryErrorClass =
  | { kind: 'rate_limited'; retryAfterMs: number }
  | { kind: 'transient'; reason: string }
  | { kind: 'recipient_gone'; reason: 'blocked' | 'deactivated' | 'kicked' | 'chat_deleted' }
  | { kind: 'chat_not_found' }
  | { kind: 'migrated'; newChatId: number }
  | { kind: 'content'; reason: string }
  | { kind: 'unauthorized' }
  | { kind: 'permanent'; reason: string };

export type ClassifiedError = DeliveryErrorClass & { code: number | null; description: string };

interface ApiErrorShape {
  code: number;
  description: string;
  parameters: { retry_after?: unknown; migrate_to_chat_id?: unknown };
}

const NETWORK_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN',
  'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'EHOSTDOWN', 'ESOCKETTIMEDOUT', 'ERR_SOCKET_CONNECTION_TIMEOUT',
  'ERR_NOT_SENT',
]);

// Ordered: longer phrases first where one contains another.
const CONTENT_PATTERNS = [
  'message caption is too long', 'message is too long', "can't parse entities", 'message text is empty',
  'text must be non-empty', 'wrong remote file identifier', 'wrong file identifier', 'failed to get HTTP URL content',
  'wrong type of the web page content', 'wrong HTTP URL', 'BUTTON_URL_INVALID', 'reply markup is too long',
  'MEDIA_CAPTION_TOO_LONG', 'PHOTO_INVALID_DIMENSIONS', 'IMAGE_PROCESS_FAILED', 'WEBPAGE_CURL_FAILED',
  'WEBPAGE_MEDIA_EMPTY', 'message to copy not found',
];
const CHAT_NOT_FOUND_PATTERNS = ['chat not found', 'PEER_ID_INVALID', 'user not found'];

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

// Accepts telegraf's TelegramError, anything shaped like it, or a raw
// `{ ok:false, error_code, description }` response body.
function apiError(err: unknown): ApiErrorShape | null {
  if (!isObj(err)) return null;
  const src = isObj(err.response) && typeof err.response.error_code === 'number' ? err.response
    : typeof err.error_code === 'number' ? err
      : typeof err.code === 'number' && typeof err.description === 'string' ? { ...err, error_code: err.code }
        : null;
  if (!src) return null;
  const parameters = isObj(src.parameters) ? src.parameters : isObj(err.parameters) ? err.parameters : {};
  return {
    code: src.error_code as number,
    description: typeof src.description === 'string' ? src.description : '',
    parameters,
  };
}

// Finds a network-level failure anywhere in the cause chain (undici and
// node-fetch both wrap the socket error).
function networkReason(err: unknown, depth = 0): string | null {
  if (!isObj(err) || depth > 4) return null;
  const { name, code, type } = err;
  if (name === 'AbortError') return 'aborted';
  if (name === 'TimeoutError' || type === 'request-timeout' || type === 'body-timeout') return 'timeout';
  if (typeof code === 'string' && (NETWORK_CODES.has(code) || code.startsWith('UND_ERR_'))) return code;
  const nested = networkReason(err.cause, depth + 1);
  if (nested) return nested;
  if (name === 'FetchError') return typeof code === 'string' ? code : typeof type === 'string' ? type.replace(/-/g, '_') : 'fetch_error';
  return null;
}

/** Strips the "Bad Request: " style prefix and any variable tail after the first ": ". */
export function stableReason(description: string): string {
  const body = description.replace(/^(Bad Request|Forbidden|Unauthorized|Conflict|Not Found):\s*/i, '');
  const head = body.split(': ')[0] ?? body;
  return head.replace(/\d+/g, 'N').trim().slice(0, 120) || 'unknown';
}

function findPattern(description: string, patterns: string[]): string | undefined {
  const d = description.toLowerCase();
  return patterns.find((p) => d.includes(p.toLowerCase()));
}

function classifyApi({ code, description, parameters }: ApiErrorShape): DeliveryErrorClass {
  if (code === 429) {
    const fromText = /retry after (\d+)/i.exec(description)?.[1];
    const secs = Number(parameters.retry_after ?? fromText);
    return { kind: 'rate_limited', retryAfterMs: Number.isFinite(secs) && secs >= 0 ? secs * 1000 : 1000 };
  }
  if (code >= 500 && code <= 599) return { kind: 'transient', reason: `http_${code}` };
  if (code === 401) return { kind: 'unauthorized' };
  const d = description.toLowerCase();
  if (code === 403) {
    if (d.includes('blocked by the user')) return { kind: 'recipient_gone', reason: 'blocked' };
    if (d.includes('deactivated')) return { kind: 'recipient_gone', reason: 'deactivated' };
    if (d.includes('kicked')) return { kind: 'recipient_gone', reason: 'kicked' };
    if (d.includes('chat was deleted')) return { kind: 'recipient_gone', reason: 'chat_deleted' };
    return { kind: 'permanent', reason: stableReason(description) };
  }
  if (code === 400) {
    const migrateTo = Number(parameters.migrate_to_chat_id);
    if (parameters.migrate_to_chat_id !== undefined && Number.isFinite(migrateTo)) return { kind: 'migrated', newChatId: migrateTo };
    if (findPattern(description, CHAT_NOT_FOUND_PATTERNS)) return { kind: 'chat_not_found' };
    const content = findPattern(description, CONTENT_PATTERNS);
    if (content) return { kind: 'content', reason: content };
    // Catch-all for the many entity errors ("entities too long", "ENTITY_BOUNDS_INVALID", ...).
    if (/entit(y|ies)/i.test(description)) return { kind: 'content', reason: stableReason(description) };
    return { kind: 'permanent', reason: stableReason(description) };
  }
  return { kind: 'permanent', reason: `http_${code}:${stableReason(description)}` };
}

// Network error messages embed the request URL; telegraf only redacts tokens it recognises.
const redact = (s: string): string => s.replace(/\/(bot|user)[^/\s]+\//g, '/$1[REDACTED]/');

/** A description is kept to this many characters (the ledger's error column holds as many). */
export const MAX_DESCRIPTION = 500;
const cap = (s: string): string => (s.length > MAX_DESCRIPTION ? `${s.slice(0, MAX_DESCRIPTION - 1)}…` : s);

/** What an error means for delivery, classified on the whole text, described in at most MAX_DESCRIPTION characters. */
export function classifyTelegramError(err: unknown): ClassifiedError {
  const api = apiError(err);
  if (api) return { ...classifyApi(api), code: api.code, description: cap(api.description) };
  const message = err instanceof Error ? err.message : isObj(err) && typeof err.message === 'string' ? err.message : String(err);
  const description = redact(message);
  // Unknown failures are retried: a retry costs little, wrongly dropping a recipient costs a lot.
  return { kind: 'transient', reason: networkReason(err) ?? 'unknown', code: null, description: cap(description) };
}

/** Short, stable label for logs, metrics and the DB (identical errors produce identical labels). */
export function describeClass(c: DeliveryErrorClass): string {
  switch (c.kind) {
    case 'rate_limited': return 'rate_limited';
    case 'transient': return `transient:${c.reason}`;
    case 'recipient_gone': return c.reason;
    case 'chat_not_found': return 'chat_not_found';
    case 'migrated': return 'migrated';
    case 'content': return `content:${c.reason}`;
    case 'unauthorized': return 'unauthorized';
    case 'permanent': return `permanent:${c.reason}`;
  }
}

// Failures that happen before the request can have reached Telegram: nothing was delivered.
// ERR_NOT_SENT: the sender gave up before the request was on a connected socket (sender.ts).
const NEVER_SENT = new Set(['ERR_NOT_SENT', 'ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'EHOSTDOWN']);

/**
 * Could the message have been delivered although the call failed? A timeout, a reset or a
 * torn response may come after Telegram accepted the message; an answered 5xx or a refused
 * connection did not deliver it. At-most-once delivery must not resend the former.
 */
export function mayHaveBeenDelivered(c: DeliveryErrorClass): boolean {
  if (c.kind !== 'transient') return false;
  if (/^http_5\d\d$/.test(c.reason)) return false;
  return !NEVER_SENT.has(c.reason);
}
