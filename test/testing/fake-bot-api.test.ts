import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Telegram, TelegramError } from 'telegraf';
import { FakeBotApi, type FakeBotApiOptions } from '../../src/testing/index.js';
import { classifyTelegramError as classify, describeClass } from '../../src/telegram/classify.js';

// Shaped like a real token so telegraf's redaction regex applies to it.
const TOKEN = '110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw';

async function withApi(opts: FakeBotApiOptions, fn: (api: FakeBotApi, tg: Telegram, root: string) => Promise<void>): Promise<void> {
  const api = new FakeBotApi({ token: TOKEN, ...opts });
  const root = await api.start();
  try {
    await fn(api, new Telegram(TOKEN, { apiRoot: root }), root);
  } finally {
    await api.stop();
  }
}

// telegraf types `signal` with the abort-controller polyfill's AbortSignal; the native one works at runtime.
type TelegrafSignal = NonNullable<Parameters<Telegram['callApi']>[2]>['signal'];
const sig = (s: AbortSignal): TelegrafSignal => s as unknown as TelegrafSignal;

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to fail');
}

async function telegramError(p: Promise<unknown>): Promise<TelegramError> {
  const err = await rejection(p);
  assert.instance(err, TelegramError);
  return err as TelegramError;
}

test('trailing-slash apiRoot: telegraf calls POST <root>bot<token>/<method>', async () => {
  await withApi({}, async (api, tg, root) => {
    assert.match(root, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    // telegraf resolves `./bot<token>/<method>` against apiRoot with WHATWG URL rules.
    assert.is(new URL(`./bot${TOKEN}/getMe`, root).href, `${root}bot${TOKEN}/getMe`);
    assert.equal(await tg.getMe(), { id: 123456, is_bot: true, first_name: 'Fake', username: 'fake_bot' } as never);
    // Without the trailing slash a path prefix is silently dropped (URL resolution replaces the last segment)...
    assert.is((await new Telegram(TOKEN, { apiRoot: `${root}ignored` }).getMe()).username, 'fake_bot');
    // ...and with one it is kept, which this server does not serve.
    const err = await telegramError(new Telegram(TOKEN, { apiRoot: `${root}prefix/` }).getMe());
    assert.is(err.code, 404);
    // getMe also answers GET, as the real API does.
    const res = await fetch(`${root}bot${TOKEN}/getMe`);
    assert.equal(await res.json(), { ok: true, result: { id: 123456, is_bot: true, first_name: 'Fake', username: 'fake_bot' } });
    assert.equal(api.calls.map((c) => [c.method, c.status]), [['getMe', 200], ['getMe', 200], ['getMe', 404], ['getMe', 200]]);
  });
});

test('sendMessage success shape, per-chat message ids, events', async () => {
  await withApi({}, async (api, tg) => {
    const deliveredEvent = api.waitFor('delivered', (d) => d.chatId === 42);
    const m1 = await tg.sendMessage(42, '<b>hi</b> there', { parse_mode: 'HTML', reply_markup: { inline_keyboard: [[{ text: 'go', url: 'https://example.com' }]] } });
    const m2 = await tg.sendMessage(42, 'second');
    const other = await tg.sendMessage(-100, 'group hello');
    assert.is(m1.message_id, 1);
    assert.is(m2.message_id, 2);
    assert.is(other.message_id, 1);
    assert.equal(m1.chat, { id: 42, type: 'private', first_name: 'User' });
    assert.is(other.chat.type, 'group');
    assert.is(m1.text, 'hi there'); // entities are parsed out of the returned text
    assert.is(m1.from?.username, 'fake_bot');
    assert.ok(Math.abs(m1.date - Date.now() / 1000) < 5);
    const d = await deliveredEvent;
    assert.is(d.text, '<b>hi</b> there');
    // JSON bodies carry reply_markup as a nested object (telegraf only stringifies it for multipart).
    assert.equal(d.body.reply_markup, { inline_keyboard: [[{ text: 'go', url: 'https://example.com' }]] });
    assert.is(api.deliveredCount(42), 2);
    assert.is(api.deliveredCount(-100), 1);
    assert.is(api.deliveredCount(7), 0);
    assert.is(api.delivered.length, 3);
    api.reset();
    assert.is(api.calls.length, 0);
    assert.is(api.deliveredCount(42), 0);
    assert.is((await tg.sendMessage(42, 'after reset')).message_id, 3);
  });
});

test('media methods, multipart uploads and copyMessage', async () => {
  await withApi({}, async (api, tg) => {
    const photo = await tg.sendPhoto(5, 'AgACAgIAAxkBAAIB', { caption: 'nice' });
    assert.is(photo.caption, 'nice');
    assert.is(photo.photo[0]?.file_id, 'AgACAgIAAxkBAAIB');
    // A Buffer source switches telegraf to multipart/form-data; fields arrive as strings.
    const upload = api.waitFor('delivered', (d) => d.method === 'sendDocument');
    await tg.sendDocument(5, { source: Buffer.from('hello'), filename: 'a.txt' }, { caption: 'doc', reply_markup: { inline_keyboard: [] } });
    const d = await upload;
    assert.is(d.chatId, 5);
    assert.is(d.caption, 'doc');
    assert.is(d.body.reply_markup, '{"inline_keyboard":[]}');
    assert.equal(d.body.document, { filename: 'a.txt', size: 5 });
    assert.is(d.body.method, 'sendDocument'); // telegraf adds the method name as a form field
    assert.ok((await tg.sendVideo(5, 'vid')).video);
    assert.ok((await tg.sendAnimation(5, 'anim')).animation);
    assert.equal(await tg.copyMessage(6, 5, 1), { message_id: 1 });
    assert.is(api.deliveredCount(5), 4);
    const noPhoto = await telegramError(tg.callApi('sendPhoto', { chat_id: 5 } as never));
    assert.is(noPhoto.description, 'Bad Request: there is no photo in the request');
  });
});

test('form-urlencoded bodies are accepted', async () => {
  await withApi({}, async (api, _tg, root) => {
    const res = await fetch(`${root}bot${TOKEN}/sendMessage`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ chat_id: '-1001234567890', text: 'form' }).toString(),
    });
    const body = (await res.json()) as { ok: boolean; result: { chat: { id: number; type: string } } };
    assert.is(body.ok, true);
    assert.equal(body.result.chat, { id: -1001234567890, type: 'supergroup', title: 'Group' });
    assert.is(api.deliveredCount(-1001234567890), 1);
  });
});

test('validation errors look like Telegram and classify as content', async () => {
  await withApi({}, async (_api, tg) => {
    const cases: Array<[Promise<unknown>, string, string]> = [
      [tg.callApi('sendMessage', { text: 'x' } as never), 'Bad Request: chat_id is empty', 'permanent:chat_id is empty'],
      [tg.sendMessage(1, ''), 'Bad Request: message text is empty', 'content:message text is empty'],
      [tg.sendMessage(1, 'x'.repeat(4097)), 'Bad Request: message is too long', 'content:message is too long'],
      [tg.sendPhoto(1, 'file', { caption: 'c'.repeat(1025) }), 'Bad Request: message caption is too long', 'content:message caption is too long'],
      [tg.sendMessage(1, '<b>bold', { parse_mode: 'HTML' }), 'Bad Request: can\'t parse entities: Can\'t find end tag corresponding to start tag "b"', "content:can't parse entities"],
      [tg.sendMessage(1, 'a <foo>x</foo>', { parse_mode: 'HTML' }), 'Bad Request: can\'t parse entities: Unsupported start tag "foo" at byte offset 2', "content:can't parse entities"],
      [tg.sendMessage(1, '<b><i>x</b></i>', { parse_mode: 'HTML' }), 'Bad Request: can\'t parse entities: Unmatched end tag at byte offset 7, expected "</i>", found "</b>"', "content:can't parse entities"],
    ];
    for (const [call, description, label] of cases) {
      const err = await telegramError(call);
      assert.is(err.code, 400);
      assert.is(err.description, description);
      assert.is(describeClass(classify(err)), label);
    }
    // Limits apply to the text after HTML parsing, and balanced markup is fine.
    await tg.sendMessage(1, `<b>${'x'.repeat(4096)}</b>`, { parse_mode: 'HTML' });
    await tg.sendMessage(1, '<a href="https://t.me">l</a> <tg-spoiler>s</tg-spoiler> 1 < 2', { parse_mode: 'HTML' });
  });
});

test('chat states → real descriptions → recipient classes', async () => {
  await withApi({}, async (api, tg) => {
    const cases = [
      ['blocked', 403, 'Forbidden: bot was blocked by the user', 'blocked'],
      ['deactivated', 403, 'Forbidden: user is deactivated', 'deactivated'],
      ['kicked', 403, 'Forbidden: bot was kicked from the group chat', 'kicked'],
      ['chat_deleted', 403, 'Forbidden: the group chat was deleted', 'chat_deleted'],
      ['not_found', 400, 'Bad Request: chat not found', 'chat_not_found'],
    ] as const;
    for (const [i, [state, code, description, label]] of cases.entries()) {
      api.setChatState(100 + i, state);
      const err = await telegramError(tg.sendMessage(100 + i, 'hello'));
      assert.is(err.code, code);
      assert.is(err.description, description);
      const c = classify(err);
      assert.is(c.code, code);
      assert.is(describeClass(c), label);
      assert.is(c.kind, label === 'chat_not_found' ? 'chat_not_found' : 'recipient_gone');
    }
    api.setChatState(100, null);
    assert.is((await tg.sendMessage(100, 'unblocked')).message_id, 1);
    assert.is(api.delivered.length, 1);
  });
});

test('migrate → 400 with parameters.migrate_to_chat_id', async () => {
  await withApi({}, async (api, tg) => {
    api.migrate(-555, -1009876543210);
    const err = await telegramError(tg.sendMessage(-555, 'hi'));
    assert.is(err.code, 400);
    assert.is(err.description, 'Bad Request: group chat was upgraded to a supergroup chat');
    assert.equal(err.parameters, { migrate_to_chat_id: -1009876543210 });
    assert.equal(classify(err), { kind: 'migrated', newChatId: -1009876543210, code: 400, description: err.description });
    assert.is((await tg.sendMessage(-1009876543210, 'hi')).chat.type, 'supergroup');
  });
});

test('global rate limit: 429 wire shape, every arrival counts', async () => {
  await withApi({ rateLimit: 5, retryAfterSeconds: 2 }, async (api, tg) => {
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => tg.sendMessage(i + 1, 'x')));
    const rejected = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as TelegramError] : []));
    assert.is(rejected.length, 3);
    for (const err of rejected) {
      assert.is(err.code, 429);
      assert.is(err.description, 'Too Many Requests: retry after 2');
      assert.equal(err.parameters, { retry_after: 2 });
      assert.equal(classify(err), { kind: 'rate_limited', retryAfterMs: 2000, code: 429, description: err.description });
    }
    assert.is(api.tooManyRequests, 3);
    assert.is(api.delivered.length, 5);
    assert.is(api.maxCallsInWindow(), 8);
    assert.is(api.calls.filter((c) => c.status === 429).length, 3);
  });
});

test('getMe does not use up the message rate limit', async () => {
  // Two daemons' start-up getMe calls counted as messages: a two-daemon run at 20/s saw a 429
  // in its first second (test/telegram/rate-limit.test.ts, flaky). Telegram limits messages.
  await withApi({ rateLimit: 2 }, async (api, tg) => {
    await tg.getMe();
    await tg.getMe();
    await tg.sendMessage(1, 'x');
    await tg.sendMessage(2, 'x');
    assert.is(api.tooManyRequests, 0);
    assert.is(api.maxCallsInWindow(), 2);
  });
});

test('maxCallsInWindow sweeps arrival times', async () => {
  const api = new FakeBotApi();
  const at = [1500, 0, 999, 500, 1000, 4000];
  api.calls = at.map((t) => ({ at: t, method: 'sendMessage', chatId: 1, status: 200 }));
  assert.is(api.maxCallsInWindow(1000), 3);
  assert.is(api.maxCallsInWindow(1001), 4);
  assert.is(api.maxCallsInWindow(10_000), 6);
  api.calls = [];
  assert.is(api.maxCallsInWindow(), 0);
});

test('per-chat limit applies per chat', async () => {
  await withApi({ perChatPerSecond: 2 }, async (api, tg) => {
    await tg.sendMessage(1, 'a');
    await tg.sendMessage(1, 'b');
    const err = await telegramError(tg.sendMessage(1, 'c'));
    assert.is(err.code, 429);
    assert.equal(err.parameters, { retry_after: 1 });
    await tg.sendMessage(2, 'other chat is unaffected');
    assert.is(api.deliveredCount(1), 2);
    assert.is(api.tooManyRequests, 1);
  });
});

test('group minute limit answers with the time until the window frees', async () => {
  await withApi({ groupPerMinute: 2 }, async (_api, tg) => {
    await tg.sendMessage(-9, '1');
    await tg.sendMessage(-9, '2');
    const err = await telegramError(tg.sendMessage(-9, '3'));
    assert.is(err.code, 429);
    const retry = err.parameters?.retry_after ?? 0;
    assert.ok(retry >= 55 && retry <= 60, `retry_after ${retry}`);
  });
});

test('flaky chat: N failures with the given status, then success', async () => {
  await withApi({}, async (api, tg) => {
    api.flaky(9, 2, 502);
    for (let i = 0; i < 2; i++) {
      const err = await telegramError(tg.sendMessage(9, 'x'));
      // telegraf ignores 5xx bodies and reports the HTTP status text.
      assert.is(err.code, 502);
      assert.is(err.description, 'Bad Gateway');
      assert.equal(classify(err), { kind: 'transient', reason: 'http_502', code: 502, description: 'Bad Gateway' });
    }
    assert.is((await tg.sendMessage(9, 'x')).message_id, 1);
    api.flaky(10, 1);
    assert.is((await telegramError(tg.sendMessage(10, 'x'))).description, 'Internal Server Error');
  });
});

test('hung call + AbortSignal → AbortError → transient', async () => {
  await withApi({}, async (api, tg) => {
    api.setFaults({ hangRate: 1 });
    const ac = new AbortController();
    const hung = api.waitFor('call', (c) => c.fault === 'hang');
    const p = tg.callApi('sendMessage', { chat_id: 1, text: 'x' }, { signal: sig(ac.signal) });
    await hung;
    ac.abort();
    const err = await rejection(p);
    assert.is((err as Error).name, 'AbortError');
    assert.equal(classify(err), { kind: 'transient', reason: 'aborted', code: null, description: 'The user aborted a request.' });
    // AbortSignal.timeout is the practical per-call timeout; the call never gets an answer, so no race.
    const timedOut = await rejection(tg.callApi('sendMessage', { chat_id: 1, text: 'y' }, { signal: sig(AbortSignal.timeout(20)) }));
    assert.is(describeClass(classify(timedOut)), 'transient:aborted');
    assert.is(api.delivered.length, 0);
  });
});

test('latency delays the answer but not the delivery', async () => {
  await withApi({ latencyMs: 40 }, async (api, tg) => {
    const delivered = api.waitFor('delivered');
    const answered = api.waitFor('call');
    const started = performance.now();
    const sent = tg.sendMessage(3, 'slow');
    const d = await delivered;
    assert.is(api.calls.length, 0); // delivered, not yet answered
    const call = await answered;
    assert.is((await sent).message_id, d.messageId);
    assert.is(call.status, 200);
    assert.ok(performance.now() - started >= 39);
  });
});

test('stop() tears down hung requests', async () => {
  const api = new FakeBotApi({ token: TOKEN });
  const tg = new Telegram(TOKEN, { apiRoot: await api.start() });
  try {
    api.setFaults({ hangRate: 1 });
    const hung = api.waitFor('call');
    const p = rejection(tg.sendMessage(1, 'x'));
    await hung;
    await api.stop();
    assert.is(describeClass(classify(await p)), 'transient:ECONNRESET');
  } finally {
    await api.stop();
  }
});

test('reset, error rate and storm faults', async () => {
  await withApi({}, async (api, tg) => {
    api.setFaults({ resetRate: 1 });
    const reset = await rejection(tg.sendMessage(1, 'x'));
    assert.is((reset as { name?: string }).name, 'FetchError');
    assert.is(describeClass(classify(reset)), 'transient:ECONNRESET');
    assert.not.match(classify(reset).description, TOKEN.split(':')[1]!); // URL in the message is redacted
    assert.is(api.calls[0]?.fault, 'reset');
    api.setFaults({ resetRate: 0, errorRate: 1, errorStatus: 503 });
    const e503 = await telegramError(tg.sendMessage(1, 'x'));
    assert.is(describeClass(classify(e503)), 'transient:http_503');
    api.setFaults({ errorRate: 0, storm: true });
    const storm = await telegramError(tg.sendMessage(1, 'x'));
    assert.is(storm.code, 429);
    assert.is(api.tooManyRequests, 1);
    api.setFaults({ storm: false });
    await tg.sendMessage(1, 'x');
    assert.is(api.deliveredCount(1), 1);
  });
});

test('seeded faults are reproducible', async () => {
  const run = async (): Promise<number[]> => {
    const statuses: number[] = [];
    await withApi({}, async (api, tg) => {
      api.setFaults({ errorRate: 0.5, seed: 42 });
      for (let i = 0; i < 20; i++) await tg.sendMessage(1, 'x').catch(() => undefined);
      statuses.push(...api.calls.map((c) => c.status));
    });
    return statuses;
  };
  const a = await run();
  assert.equal(a, await run());
  assert.ok(a.includes(500) && a.includes(200));
});

test('wrong or revoked token → 401 unauthorized; unknown method → 404', async () => {
  await withApi({}, async (api, tg, root) => {
    const wrong = await telegramError(new Telegram('1:wrong', { apiRoot: root }).getMe());
    assert.is(wrong.code, 401);
    assert.is(wrong.description, 'Unauthorized');
    assert.is(classify(wrong).kind, 'unauthorized');
    api.setToken('2:new');
    assert.is(classify(await rejection(tg.sendMessage(1, 'x'))).kind, 'unauthorized');
    assert.is((await new Telegram('2:new', { apiRoot: root }).sendMessage(1, 'x')).message_id, 1);
    const unknown = await telegramError(new Telegram('2:new', { apiRoot: root }).getChat(1));
    assert.is(unknown.code, 404);
    assert.is(unknown.description, 'Not Found');
  });
});

test.run();
