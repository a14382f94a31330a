import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TelegramError } from 'telegraf';
import { classifyTelegramError as classify, describeClass, stableReason } from '../../src/telegram/classify.js';

const tg = (error_code: number, description: string, parameters?: Record<string, number>): TelegramError =>
  new TelegramError({ error_code, description, ...(parameters && { parameters }) });
const sysErr = (code: string, extra: Record<string, unknown> = {}): Error => Object.assign(new Error(`boom ${code}`), { code, ...extra });

test('429 → rate_limited with retry_after in ms, defaulting to 1000', () => {
  const c = classify(tg(429, 'Too Many Requests: retry after 7', { retry_after: 7 }));
  assert.equal(c, { kind: 'rate_limited', retryAfterMs: 7000, code: 429, description: 'Too Many Requests: retry after 7' });
  assert.equal(classify(tg(429, 'Too Many Requests')), {
    kind: 'rate_limited', retryAfterMs: 1000, code: 429, description: 'Too Many Requests',
  });
  // Description-only retry hint (no parameters) is still honoured.
  const fromText = classify(tg(429, 'Too Many Requests: retry after 3'));
  assert.is(fromText.kind === 'rate_limited' && fromText.retryAfterMs, 3000);
  assert.is(describeClass(c), 'rate_limited');
});

test('5xx → transient', () => {
  for (const [code, text] of [[500, 'Internal Server Error'], [502, 'Bad Gateway'], [503, 'Service Unavailable'], [504, 'Gateway Timeout']] as const) {
    const c = classify(tg(code, text));
    assert.equal(c, { kind: 'transient', reason: `http_${code}`, code, description: text });
  }
  assert.is(describeClass(classify(tg(502, 'Bad Gateway'))), 'transient:http_502');
});

test('401 → unauthorized', () => {
  assert.is(classify(tg(401, 'Unauthorized')).kind, 'unauthorized');
  assert.is(classify(tg(401, 'Bot Token is required')).kind, 'unauthorized');
  assert.is(describeClass(classify(tg(401, 'Unauthorized'))), 'unauthorized');
});

test('403 recipient-gone variants and other 403s', () => {
  const cases: Array<[string, string]> = [
    ['Forbidden: bot was blocked by the user', 'blocked'],
    ['Forbidden: user is deactivated', 'deactivated'],
    ['Forbidden: bot was kicked from the group chat', 'kicked'],
    ['Forbidden: bot was kicked from the supergroup chat', 'kicked'],
    ['Forbidden: bot was kicked from the channel chat', 'kicked'],
    ['Forbidden: the group chat was deleted', 'chat_deleted'],
  ];
  for (const [description, reason] of cases) {
    const c = classify(tg(403, description));
    assert.equal(c, { kind: 'recipient_gone', reason, code: 403, description } as never, description);
    assert.is(describeClass(c), reason);
  }
  const cant = classify(tg(403, "Forbidden: bot can't initiate conversation with a user"));
  assert.equal(cant, { kind: 'permanent', reason: "bot can't initiate conversation with a user", code: 403, description: "Forbidden: bot can't initiate conversation with a user" });
  assert.is(classify(tg(403, 'Forbidden: not enough rights to send text messages to the chat')).kind, 'permanent');
  assert.is(describeClass(cant), "permanent:bot can't initiate conversation with a user");
});

test('400 migrated, chat_not_found, content and other', () => {
  const m = classify(tg(400, 'Bad Request: group chat was upgraded to a supergroup chat', { migrate_to_chat_id: -1001234567890 }));
  assert.equal(m, { kind: 'migrated', newChatId: -1001234567890, code: 400, description: 'Bad Request: group chat was upgraded to a supergroup chat' });
  assert.is(describeClass(m), 'migrated');
  for (const d of ['Bad Request: chat not found', 'Bad Request: PEER_ID_INVALID', 'Bad Request: user not found']) {
    assert.is(classify(tg(400, d)).kind, 'chat_not_found', d);
  }
  assert.is(describeClass(classify(tg(400, 'Bad Request: chat not found'))), 'chat_not_found');
  const content: Array<[string, string]> = [
    ['Bad Request: message is too long', 'message is too long'],
    ['Bad Request: message caption is too long', 'message caption is too long'],
    ["Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"b\"", "can't parse entities"],
    ["Bad Request: can't parse entities: Unsupported start tag \"foo\" at byte offset 12", "can't parse entities"],
    ['Bad Request: message text is empty', 'message text is empty'],
    ['Bad Request: wrong file identifier/HTTP URL specified', 'wrong file identifier'],
    ['Bad Request: wrong remote file identifier specified: Wrong padding in the string', 'wrong remote file identifier'],
    ['Bad Request: failed to get HTTP URL content', 'failed to get HTTP URL content'],
    ['Bad Request: wrong type of the web page content', 'wrong type of the web page content'],
    ['Bad Request: BUTTON_URL_INVALID', 'BUTTON_URL_INVALID'],
    ['Bad Request: reply markup is too long', 'reply markup is too long'],
    ['Bad Request: MEDIA_CAPTION_TOO_LONG', 'MEDIA_CAPTION_TOO_LONG'],
    ['Bad Request: entities too long', 'entities too long'],
  ];
  for (const [d, reason] of content) {
    const c = classify(tg(400, d));
    assert.equal({ kind: c.kind, reason: c.kind === 'content' ? c.reason : null }, { kind: 'content', reason }, d);
    assert.is(describeClass(c), `content:${reason}`);
  }
  const other = classify(tg(400, 'Bad Request: message thread not found'));
  assert.equal(other, { kind: 'permanent', reason: 'message thread not found', code: 400, description: 'Bad Request: message thread not found' });
});

test('unknown codes → permanent, with a stable reason', () => {
  const c = classify(tg(409, 'Conflict: terminated by other getUpdates request'));
  assert.is(c.kind, 'permanent');
  assert.is(describeClass(c), 'permanent:http_409:terminated by other getUpdates request');
  assert.is(classify(tg(404, 'Not Found')).kind, 'permanent');
});

test('duck-typed Telegram errors and raw response bodies', () => {
  const duck = { code: 403, response: { ok: false, error_code: 403, description: 'Forbidden: bot was blocked by the user' } };
  assert.equal(classify(duck), { kind: 'recipient_gone', reason: 'blocked', code: 403, description: 'Forbidden: bot was blocked by the user' });
  const raw = { ok: false, error_code: 429, description: 'Too Many Requests: retry after 5', parameters: { retry_after: 5 } };
  assert.equal(classify(raw), { kind: 'rate_limited', retryAfterMs: 5000, code: 429, description: raw.description });
  const flat = { code: 400, description: 'Bad Request: chat not found' };
  assert.is(classify(flat).kind, 'chat_not_found');
  // A Node error's string `code` must not be mistaken for an HTTP status.
  assert.is(classify(sysErr('ECONNRESET')).code, null);
});

test('network errors → transient with the system code as reason', () => {
  for (const code of ['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT']) {
    const c = classify(sysErr(code));
    assert.equal({ kind: c.kind, reason: c.kind === 'transient' ? c.reason : '', code: c.code }, { kind: 'transient', reason: code, code: null }, code);
  }
  // node-fetch FetchError shapes, as telegraf surfaces them.
  const fetchSys = Object.assign(new Error('request to http://x failed, reason: connect ECONNREFUSED'), { name: 'FetchError', type: 'system', code: 'ECONNREFUSED', errno: 'ECONNREFUSED' });
  assert.is(describeClass(classify(fetchSys)), 'transient:ECONNREFUSED');
  const fetchTimeout = Object.assign(new Error('network timeout at: http://x'), { name: 'FetchError', type: 'request-timeout' });
  assert.is(describeClass(classify(fetchTimeout)), 'transient:timeout');
  const badJson = Object.assign(new Error('invalid json response body'), { name: 'FetchError', type: 'invalid-json' });
  assert.is(describeClass(classify(badJson)), 'transient:invalid_json');
  // Our own per-call timeout, and undici's wrapped cause.
  assert.is(describeClass(classify(Object.assign(new Error('The user aborted a request.'), { name: 'AbortError' }))), 'transient:aborted');
  assert.is(describeClass(classify(Object.assign(new Error('signal timed out'), { name: 'TimeoutError' }))), 'transient:timeout');
  const leaky = classify(sysErr('ECONNREFUSED', { message: 'request to http://h/botabc:SECRET/sendMessage failed' }));
  assert.is(leaky.description, 'request to http://h/bot[REDACTED]/sendMessage failed');
  const undici = new TypeError('fetch failed', { cause: sysErr('UND_ERR_CONNECT_TIMEOUT') });
  assert.is(describeClass(classify(undici)), 'transient:UND_ERR_CONNECT_TIMEOUT');
});

test('unrecognised errors without a code → transient', () => {
  const c = classify(new Error('something odd'));
  assert.equal(c, { kind: 'transient', reason: 'unknown', code: null, description: 'something odd' });
  assert.is(classify('a string').kind, 'transient');
  assert.is(classify(undefined).kind, 'transient');
  assert.is(classify(null).description, 'null');
});

test('stableReason strips prefixes and variable tails', () => {
  assert.is(stableReason('Bad Request: message to edit not found'), 'message to edit not found');
  assert.is(stableReason("Bad Request: can't parse entities: Unsupported start tag \"x\" at byte offset 3"), "can't parse entities");
  assert.is(stableReason('Forbidden: bot was kicked from the group chat'), 'bot was kicked from the group chat');
  assert.is(stableReason('Bad Request: too many items 101'), 'too many items N');
  assert.is(stableReason(''), 'unknown');
});

test.run();
