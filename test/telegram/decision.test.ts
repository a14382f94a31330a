// The decision table, row by row: each Telegram error class the classifier tells apart, what the
// send job and the broadcast engine do about it, and the reason code they record.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TelegramError } from 'telegraf';
import { REASON_CODES, NotSentError } from '../../src/errors.js';
import { classifyTelegramError } from '../../src/telegram/classify.js';
import { DECISIONS, decide, type Decision } from '../../src/telegram/decision.js';

const tg = (error_code: number, description: string, parameters?: Record<string, number>): TelegramError =>
  new TelegramError({ error_code, description, ...(parameters && { parameters }) });
const sysErr = (code: string): Error => Object.assign(new Error(`boom ${code}`), { code });
const timeout = (): Error => Object.assign(new Error('timed out after 10000 ms'), { name: 'TimeoutError' });

// [what Telegram (or the network) answered, the class, the decision at-least-once, at-most-once when it differs]
const ROWS: [string, unknown, string, Decision, Decision?][] = [
  ['429 with retry_after', tg(429, 'Too Many Requests: retry after 7', { retry_after: 7 }), 'rate_limited', { action: 'pause', reason: 'rate_limited', retryAfterMs: 7000 }],
  ['500', tg(500, 'Internal Server Error'), 'transient', { action: 'retry', reason: 'server_error' }],
  ['502', tg(502, 'Bad Gateway'), 'transient', { action: 'retry', reason: 'server_error' }],
  ['connection refused', sysErr('ECONNREFUSED'), 'transient', { action: 'retry', reason: 'network' }],
  ['never sent', new NotSentError(new Error('no socket')), 'transient', { action: 'retry', reason: 'network' }],
  ['connection reset', sysErr('ECONNRESET'), 'transient', { action: 'retry', reason: 'network' }, { action: 'unknown', reason: 'outcome_unknown' }],
  ['call timed out', timeout(), 'transient', { action: 'retry', reason: 'timeout' }, { action: 'unknown', reason: 'outcome_unknown' }],
  ['403 blocked', tg(403, 'Forbidden: bot was blocked by the user'), 'recipient_gone', { action: 'unreachable', reason: 'blocked' }],
  ['403 deactivated', tg(403, 'Forbidden: user is deactivated'), 'recipient_gone', { action: 'unreachable', reason: 'blocked' }],
  ['403 kicked', tg(403, 'Forbidden: bot was kicked from the group chat'), 'recipient_gone', { action: 'unreachable', reason: 'blocked' }],
  ['403 chat deleted', tg(403, 'Forbidden: the group chat was deleted'), 'recipient_gone', { action: 'unreachable', reason: 'blocked' }],
  ['400 chat not found', tg(400, 'Bad Request: chat not found'), 'chat_not_found', { action: 'unreachable', reason: 'chat_not_found' }],
  ['400 migrate_to_chat_id', tg(400, 'Bad Request: group chat was upgraded to a supergroup chat', { migrate_to_chat_id: -1001234567890 }), 'migrated', { action: 'follow', reason: 'migrated', newChatId: -1001234567890 }],
  ['400 message too long', tg(400, 'Bad Request: message is too long'), 'content', { action: 'reject', reason: 'content' }],
  ["400 can't parse entities", tg(400, "Bad Request: can't parse entities: unclosed tag"), 'content', { action: 'reject', reason: 'content' }],
  ['401', tg(401, 'Unauthorized'), 'unauthorized', { action: 'halt', reason: 'unauthorized' }],
  ["403 can't initiate", tg(403, "Forbidden: bot can't initiate conversation with a user"), 'permanent', { action: 'fail', reason: 'bad_request' }],
  ['400 other', tg(400, 'Bad Request: not enough rights'), 'permanent', { action: 'fail', reason: 'bad_request' }],
  ['409', tg(409, 'Conflict: terminated by other getUpdates request'), 'permanent', { action: 'fail', reason: 'bad_request' }],
];

for (const [name, error, kind, atLeastOnce, atMostOnce] of ROWS) {
  test(`${name} → ${kind} → ${atLeastOnce.action} (${atLeastOnce.reason})`, () => {
    const c = classifyTelegramError(error);
    assert.is(c.kind, kind);
    assert.equal(decide(c, true), atLeastOnce, 'at-least-once');
    assert.equal(decide(c, false), atMostOnce ?? atLeastOnce, 'at-most-once');
  });
}

test('the rows cover every class in the table, and every reason given is a reason code', () => {
  assert.equal([...new Set(ROWS.map((r) => r[2]))].sort(), Object.keys(DECISIONS).sort());
  for (const [name, , , a, b] of ROWS) {
    for (const d of [a, b]) if (d) assert.ok((REASON_CODES as readonly string[]).includes(d.reason), `${name}: ${d.reason}`);
  }
});

test('an answered 5xx never counts as possibly delivered: at-most-once still retries it', () => {
  for (const code of [500, 502, 503, 504]) assert.equal(decide(classifyTelegramError(tg(code, 'x')), false), { action: 'retry', reason: 'server_error' });
});

test.run();
