// Tracked links and buttons: each recipient's copy points at the redirect listener with a token of
// their own; the listener answers 302 only to a URL that was in that broadcast's message, and a
// plain 404 (nothing recorded) to anything else; tracked callback buttons reach the bot's handler
// with their original data.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Telegraf } from 'telegraf';
import type { Update } from 'telegraf/types';
import { loadConfig } from '../../src/config/load.js';
import type { ConfigError } from '../../src/errors.js';
import { LinkTokens, TOKEN_LENGTH } from '../../src/engagement/token.js';
import { startRedirectServer, type RedirectServer } from '../../src/engagement/redirect-server.js';
import type { BroadcastQueue } from '../../src/broadcast-queue.js';
import { TEST_TOKEN, withTelegram, insertJob, jobRow } from '../helpers/telegram.js';
import { watchJobs } from '../helpers/wait.js';

const SECRET = 'a-link-secret-of-its-own-32-chars-long!';
const PUBLIC = 'https://t.example.com';
const tracking = { publicUrl: PUBLIC, linkSecret: SECRET };

test('a token names broadcast, recipient and link, is 32 characters, and any change to it or another key is refused', () => {
  const tokens = new LinkTokens(SECRET);
  const fields = { kind: 'link' as const, broadcastId: 4_242, chatId: -1_001_234_567_890, index: 7 };
  const token = tokens.encode(fields);
  assert.is(token.length, TOKEN_LENGTH);
  assert.equal(tokens.decode(token), fields);
  assert.equal(tokens.decode(tokens.encode({ ...fields, kind: 'button', chatId: 42 })), { ...fields, kind: 'button', chatId: 42 });
  // No personal data: the chat id is not readable in the token (encrypted), in any byte order.
  const raw = Buffer.from(token, 'base64url');
  const chat = Buffer.alloc(8);
  chat.writeBigInt64BE(BigInt(fields.chatId));
  assert.is(raw.indexOf(chat.subarray(3)), -1);
  for (let i = 0; i < token.length; i++) {
    const flipped = token.slice(0, i) + (token[i] === 'A' ? 'B' : 'A') + token.slice(i + 1);
    assert.is(tokens.decode(flipped), null, `changed at ${i}`);
  }
  assert.is(new LinkTokens(`${SECRET}x`).decode(token), null);
  for (const bad of ['', 'x', `${token}A`, token.slice(1), '../../etc/passwd', '%2e%2e']) assert.is(tokens.decode(bad), null);
});

const MESSAGE = {
  text: 'Sale at example.com — see details',
  entities: [
    { type: 'url', offset: 8, length: 11 },
    { type: 'text_link', offset: 26, length: 7, url: 'https://shop.example.com/sale?x=1' },
  ],
  reply_markup: { inline_keyboard: [[{ text: 'Open', url: 'https://shop.example.com/sale?x=1' }, { text: 'Like', callback_data: 'like:42' }, { text: 'App', url: 'tg://resolve?domain=x' }]] },
};

async function trackedBroadcast(db: Parameters<Parameters<typeof withTelegram>[1]>[0]['db'], queue: BroadcastQueue, chatIds: number[]): Promise<number> {
  const jobs = watchJobs(queue);
  const jobId = await insertJob(db, 'broadcast', { message: MESSAGE, chat_ids: chatIds, track: true });
  const done = await jobs.done(jobId).finally(() => jobs.stop());
  assert.is(done.outcome.kind, 'completed', JSON.stringify(done.outcome));
  return (await jobRow(db, jobId)).result.broadcast_id;
}

async function get(server: RedirectServer, path: string, method = 'GET'): Promise<{ status: number; location: string | null; body: string }> {
  const res = await fetch(`http://127.0.0.1:${server.port}${path}`, { method, redirect: 'manual' });
  return { status: res.status, location: res.headers.get('location'), body: await res.text() };
}

const clicks = async (queue: BroadcastQueue) => {
  await queue.flushUpdates();
  return (await (await queue.db()).query(`SELECT broadcast_id, chat_id, kind, link_index FROM broadcast_engagement ORDER BY at, chat_id`)).rows;
};

test('track: true rewrites each recipient\'s links; the listener redirects to the original and records the click; forged, foreign and unknown tokens get a plain 404', async () => {
  await withTelegram({ queue: { tracking } }, async ({ db, api, queue }) => {
    const broadcastId = await trackedBroadcast(db, queue, [11, 12]);
    const server = await startRedirectServer(queue.redirectHandler(), '127.0.0.1', 0);
    try {
      const sent = new Map(api.delivered.map((d) => [d.chatId, d.body as typeof MESSAGE]));
      const mine = sent.get(11)!;
      assert.is(mine.text, MESSAGE.text, 'the text is unchanged');
      const links = [mine.entities[0]!.url!, mine.entities[1]!.url!, mine.reply_markup.inline_keyboard[0]![0]!.url!];
      for (const link of links) assert.match(link, new RegExp(`^${PUBLIC}/r/[A-Za-z0-9_-]{32}$`));
      assert.is(mine.entities[0]!.type, 'text_link', 'a url entity becomes a link with the same text');
      assert.is(links[1], links[2], 'the same URL is one link');
      assert.is(mine.reply_markup.inline_keyboard[0]![2]!.url, 'tg://resolve?domain=x', 'only http(s) links are tracked');
      assert.ok(Buffer.byteLength(mine.reply_markup.inline_keyboard[0]![1]!.callback_data!) <= 64);
      assert.is.not(sent.get(12)!.entities[0]!.url, links[0], 'each recipient has tokens of their own');

      const path = (link: string) => link.slice(PUBLIC.length);
      assert.equal(await get(server, path(links[0]!)), { status: 302, location: 'http://example.com', body: '' });
      assert.equal(await get(server, path(links[1]!)), { status: 302, location: 'https://shop.example.com/sale?x=1', body: '' });
      assert.equal(await get(server, path(sent.get(12)!.entities[1]!.url!)), { status: 302, location: 'https://shop.example.com/sale?x=1', body: '' });
      assert.equal(await clicks(queue), [
        { broadcast_id: broadcastId, chat_id: 11, kind: 'click', link_index: 0 },
        { broadcast_id: broadcastId, chat_id: 11, kind: 'click', link_index: 1 },
        { broadcast_id: broadcastId, chat_id: 12, kind: 'click', link_index: 1 },
      ]);

      const token = path(links[0]!).slice('/r/'.length);
      const right = new LinkTokens(SECRET);
      const refused = [
        `/r/${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`, // forged
        `/r/${new LinkTokens(`${SECRET}-other`).encode({ kind: 'link', broadcastId, chatId: 11, index: 0 })}`, // another key
        `/r/${right.encode({ kind: 'link', broadcastId, chatId: 11, index: 9 })}`, // a link the message does not have
        `/r/${right.encode({ kind: 'link', broadcastId: broadcastId + 1_000, chatId: 11, index: 0 })}`, // a broadcast that does not exist (not the next id: the untracked broadcast below gets that)
        `/r/${right.encode({ kind: 'button', broadcastId, chatId: 11, index: 0 })}`, // a button's token is no link
        `/r/${token}/x`, '/r/', '/', '/metrics', '/api/admin/queue/status', '/health', '/r/..%2f..%2fetc',
      ];
      for (const p of refused) assert.equal(await get(server, p), { status: 404, location: null, body: 'Not found\n' }, p);
      assert.is((await get(server, path(links[0]!), 'POST')).status, 404);
      // No open redirect: nothing in the request chooses the address, only the broadcast's message.
      for (const extra of ['?url=https://evil.example.com', '?to=//evil.example.com&next=https://evil.example.com']) {
        assert.equal(await get(server, `${path(links[0]!)}${extra}`), { status: 302, location: 'http://example.com', body: '' }, extra);
      }
      assert.is((await get(server, `${path(links[0]!)}/https://evil.example.com`)).status, 404);
      assert.is((await get(server, `//evil.example.com${path(links[0]!)}`)).status, 404);
      // Telegram's link-preview fetcher and HEAD requests are redirected, never counted as clicks.
      const preview = await fetch(`http://127.0.0.1:${server.port}${path(links[0]!)}`, { redirect: 'manual', headers: { 'user-agent': 'TelegramBot (like TwitterBot)' } });
      assert.equal([preview.status, preview.headers.get('location')], [302, 'http://example.com']);
      assert.equal((await get(server, path(links[0]!), 'HEAD')).status, 302);
      assert.is((await clicks(queue)).length, 5, 'nothing recorded for a refused token (the two with a query are clicks)');

      // An untracked broadcast's links are its own: a token naming it redirects nowhere.
      const jobs = watchJobs(queue);
      const plainJob = await insertJob(db, 'broadcast', { message: MESSAGE, chat_ids: [13] });
      await jobs.done(plainJob);
      const plainId = (await jobRow(db, plainJob)).result.broadcast_id;
      assert.is((api.delivered.find((d) => d.chatId === 13)!.body as typeof MESSAGE).entities[1]!.url, 'https://shop.example.com/sale?x=1');
      assert.is((await get(server, `/r/${right.encode({ kind: 'link', broadcastId: plainId, chatId: 13, index: 0 })}`)).status, 404);
    } finally {
      await server.close();
    }
  });
});

test('HTML links and each variant\'s links are tracked, indexed across the broadcast', async () => {
  await withTelegram({ queue: { tracking } }, async ({ db, api, queue }) => {
    const variants = [
      { name: 'a', weight: 1, message: { text: 'A: <a href="https://a.example.com/?p=1&amp;q=2">go</a>', parse_mode: 'HTML' } },
      { name: 'b', weight: 1, message: { text: 'B: <a href="https://b.example.com/">go</a>', parse_mode: 'HTML' } },
    ];
    const jobs = watchJobs(queue);
    const jobId = await insertJob(db, 'broadcast', { variants, chat_ids: [21, 22, 23, 24, 25, 26], track: true });
    await jobs.done(jobId);
    const server = await startRedirectServer(queue.redirectHandler(), '127.0.0.1', 0);
    try {
      const targets = new Set<string>();
      for (const d of api.delivered) {
        const href = /href="([^"]+)"/.exec(d.text!)![1]!;
        assert.ok(href.startsWith(`${PUBLIC}/r/`), d.text);
        targets.add((await get(server, href.slice(PUBLIC.length))).location!);
      }
      assert.equal([...targets].sort(), ['https://a.example.com/?p=1&q=2', 'https://b.example.com/']);
    } finally {
      await server.close();
    }
  });
});

test('a link a header cannot carry (a Cyrillic address, a line break) is redirected in its encoded form, and the listener answers on', async () => {
  await withTelegram({ queue: { tracking } }, async ({ db, api, queue }) => {
    const message = {
      text: 'Распродажа: сайт и кнопка',
      entities: [{ type: 'text_link', offset: 12, length: 4, url: 'https://пример.рф/скидки?код=да' }],
      reply_markup: { inline_keyboard: [[{ text: 'Go', url: 'https://shop.example.com/a\r\nSet-Cookie: x=1' }]] },
    };
    const jobs = watchJobs(queue);
    const jobId = await insertJob(db, 'broadcast', { message, chat_ids: [31], track: true });
    await jobs.done(jobId);
    const server = await startRedirectServer(queue.redirectHandler(), '127.0.0.1', 0);
    try {
      const body = api.delivered.find((d) => d.chatId === 31)!.body as typeof message;
      const path = (link: string) => link.slice(PUBLIC.length);
      assert.equal(await get(server, path(body.entities[0]!.url)), {
        status: 302, location: 'https://xn--e1afmkfd.xn--p1ai/%D1%81%D0%BA%D0%B8%D0%B4%D0%BA%D0%B8?%D0%BA%D0%BE%D0%B4=%D0%B4%D0%B0', body: '',
      });
      // The line break cannot smuggle a header in: it is dropped, the rest percent-encoded.
      const injected = await fetch(`http://127.0.0.1:${server.port}${path(body.reply_markup.inline_keyboard[0]![0]!.url)}`, { redirect: 'manual' });
      assert.equal([injected.status, injected.headers.get('location'), injected.headers.get('set-cookie')], [302, 'https://shop.example.com/aSet-Cookie:%20x=1', null]);
      assert.is((await get(server, path(body.entities[0]!.url))).status, 302, 'still answering');
    } finally {
      await server.close();
    }
  });
});

test('a tracked callback button: the middleware records the press, answers the query, and the bot sees the original data', async () => {
  await withTelegram({ queue: { tracking } }, async ({ db, api, apiRoot, queue }) => {
    const broadcastId = await trackedBroadcast(db, queue, [31]);
    const data = (api.delivered[0]!.body as typeof MESSAGE).reply_markup.inline_keyboard[0]![1]!.callback_data!;
    assert.ok(data.startsWith('bq:'));
    const bot = new Telegraf(TEST_TOKEN, { telegram: { apiRoot } });
    bot.use(queue.telegraf());
    const seen: string[] = [];
    bot.on('callback_query', (ctx) => { seen.push((ctx.callbackQuery as { data: string }).data); });
    const press = (callbackData: string): Update => ({
      update_id: 1, callback_query: { id: `q${callbackData.length}`, chat_instance: 'c', from: { id: 31, is_bot: false, first_name: 'x' }, message: { message_id: 1, date: 0, chat: { id: 31, type: 'private', first_name: 'x' }, text: 'x' }, data: callbackData },
    } as Update);
    await bot.handleUpdate(press(data));
    await bot.handleUpdate(press('bq:not-a-token'));
    assert.equal(seen, ['like:42', 'bq:not-a-token']);
    assert.is(api.calls.filter((c) => c.method === 'answerCallbackQuery' && c.status === 200).length, 1);
    assert.equal(await clicks(queue), [{ broadcast_id: broadcastId, chat_id: 31, kind: 'press', link_index: 0 }]);
  });
});

test('track: true without tracked links set up fails the broadcast and says what to set', async () => {
  await withTelegram({}, async ({ db, queue }) => {
    const jobs = watchJobs(queue);
    const jobId = await insertJob(db, 'broadcast', { message: MESSAGE, chat_ids: [41], track: true });
    const done = await jobs.done(jobId);
    assert.is(done.outcome.kind, 'failed');
    assert.match((await jobRow(db, jobId)).last_error, 'BQ_PUBLIC_URL and BQ_LINK_SECRET');
  });
});

test('the daemon needs BQ_PUBLIC_URL and BQ_LINK_SECRET together, a long secret, and never echoes it', () => {
  const problems = (env: Record<string, string>) => {
    try {
      loadConfig(env);
      return [];
    } catch (error) {
      return (error as ConfigError).problems;
    }
  };
  assert.equal(problems({ BQ_PUBLIC_URL: PUBLIC }), ['BQ_PUBLIC_URL is set, so BQ_LINK_SECRET must be set too (a key of its own for the tracked-link tokens)']);
  assert.equal(problems({ BQ_PUBLIC_URL: PUBLIC, BQ_LINK_SECRET: 'hunter2-short' }), ['BQ_LINK_SECRET must be at least 32 characters, got 13']);
  assert.equal(problems({ BQ_PUBLIC_URL: `${PUBLIC}/?a=1`, BQ_LINK_SECRET: SECRET }), ['BQ_PUBLIC_URL must be a plain base URL without a user name, password, query or fragment (links are built as <url>/r/<token>)']);
  assert.equal(problems({ BQ_PUBLIC_URL: PUBLIC, BQ_LINK_SECRET: SECRET, BQ_PUBLIC_PORT: '3000' }), ['BQ_PUBLIC_PORT and BQ_HTTP_PORT are both 3000: the public redirect listener must not share the admin API\'s']);
  const config = loadConfig({ BQ_PUBLIC_URL: PUBLIC, BQ_LINK_SECRET: SECRET });
  assert.equal([config.publicHost, config.publicPort, config.linkSecret], ['127.0.0.1', 3001, SECRET]);
});

test.run();
