// The subscriber list the bot keeps itself: a real Telegraf bot handles updates through
// bot.handleUpdate(...) with queue.telegraf() in front, talking to the Bot API stand-in.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Telegraf } from 'telegraf';
import type { Update } from 'telegraf/types';
import { PayloadError } from '../../src/errors.js';
import { ConfigError } from '../../src/errors.js';
import { BroadcastQueue } from '../../src/broadcast-queue.js';
import { TEST_TOKEN, withTelegram, insertJob, jobRow } from '../helpers/telegram.js';
import { watchJobs } from '../helpers/wait.js';

let updateId = 1;
const user = (id: number, language_code?: string) => ({ id, is_bot: false, first_name: `u${id}`, ...(language_code && { language_code }) });
const privateChat = (id: number) => ({ id, type: 'private' as const, first_name: `u${id}` });

export function textUpdate(chatId: number, text: string, extra: { language?: string; replyTo?: number } = {}): Update {
  const command = /^\/\S+/.exec(text)?.[0];
  return {
    update_id: updateId++,
    message: {
      message_id: updateId, date: Math.floor(Date.now() / 1000), chat: privateChat(chatId), from: user(chatId, extra.language), text,
      ...(command && { entities: [{ type: 'bot_command', offset: 0, length: command.length }] }),
      ...(extra.replyTo !== undefined && { reply_to_message: { message_id: extra.replyTo, date: 0, chat: privateChat(chatId), from: { id: 123456, is_bot: true, first_name: 'Fake' }, text: 'x' } }),
    },
  } as Update;
}

export function memberUpdate(chatId: number, status: 'kicked' | 'member', type: 'private' | 'group' = 'private'): Update {
  const chat = type === 'private' ? privateChat(chatId) : { id: chatId, type: 'group' as const, title: 'g' };
  const bot = { id: 123456, is_bot: true, first_name: 'Fake' };
  return {
    update_id: updateId++,
    my_chat_member: { chat, from: user(Math.abs(chatId)), date: 0, old_chat_member: { status: status === 'kicked' ? 'member' : 'kicked', user: bot, ...(status === 'member' && { until_date: 0 }) }, new_chat_member: { status, user: bot, ...(status === 'kicked' && { until_date: 0 }) } },
  } as Update;
}

function makeBot(apiRoot: string, queue: BroadcastQueue, seen: string[]): Telegraf {
  const bot = new Telegraf(TEST_TOKEN, { telegram: { apiRoot } });
  bot.use(queue.telegraf());
  bot.start((ctx) => { seen.push(`start:${ctx.chat.id}`); });
  bot.on('message', (ctx) => { seen.push(`message:${ctx.chat.id}`); });
  return bot;
}

const subscriber = async (queue: BroadcastQueue, chatId: number) =>
  (await (await queue.db()).query('SELECT *, extract(second FROM last_active_at) AS seconds FROM broadcast_subscribers WHERE chat_id = $1', [chatId])).rows[0];

test('the middleware records first seen, language and last activity to the minute, and the bot still handles every update', async () => {
  await withTelegram({ queue: { capture: { flushMs: 60_000 } } }, async ({ apiRoot, queue }) => {
    const seen: string[] = [];
    const bot = makeBot(apiRoot, queue, seen);
    await bot.handleUpdate(textUpdate(501, 'hello', { language: 'de' }));
    await bot.handleUpdate(textUpdate(502, 'hi'));
    assert.is(await subscriber(queue, 501), undefined, 'nothing is written per update');
    await queue.flushUpdates();
    const first = await subscriber(queue, 501);
    assert.is(first.language_code, 'de');
    assert.ok(first.subscribed_at instanceof Date);
    assert.is(Number(first.seconds), 0, 'last_active_at is kept to the minute');
    assert.is((await subscriber(queue, 502)).language_code, null);
    await bot.handleUpdate(textUpdate(501, 'again', { language: 'fr' }));
    await queue.flushUpdates();
    const again = await subscriber(queue, 501);
    assert.is(again.language_code, 'fr');
    assert.equal(again.subscribed_at, first.subscribed_at, 'first seen stays the first time');
    assert.equal(seen, ['message:501', 'message:502', 'message:501']);
  });
});

test('a subscriber\'s time zone comes from the bot (updates carry none): setSubscriberTimeZone, kept by later updates', async () => {
  await withTelegram({ queue: { capture: { flushMs: 60_000 } } }, async ({ apiRoot, queue }) => {
    const bot = makeBot(apiRoot, queue, []);
    await queue.setSubscriberTimeZone(601, 'Asia/Tokyo'); // before the middleware ever wrote the chat
    await bot.handleUpdate(textUpdate(601, 'hello', { language: 'ja' }));
    await queue.flushUpdates();
    assert.equal([(await subscriber(queue, 601)).time_zone, (await subscriber(queue, 601)).language_code], ['Asia/Tokyo', 'ja']);
    await queue.setSubscriberTimeZone(601, 'America/Sao_Paulo');
    await bot.handleUpdate(textUpdate(601, 'again', { language: 'pt' }));
    await queue.flushUpdates();
    assert.is((await subscriber(queue, 601)).time_zone, 'America/Sao_Paulo');
    await queue.setSubscriberTimeZone(601, null);
    assert.is((await subscriber(queue, 601)).time_zone, null);
    const error = await queue.setSubscriberTimeZone(601, 'Mars/Olympus').catch((e: unknown) => e);
    assert.instance(error, PayloadError);
    assert.match((error as Error).message, /timeZone must be an IANA time zone .* got string "Mars\/Olympus"/);
  });
});

test('1,000 updates from 50 chats are written in one transaction, not one upsert each', async () => {
  await withTelegram({ queue: { capture: { flushMs: 60_000 } } }, async ({ apiRoot, queue }) => {
    const bot = makeBot(apiRoot, queue, []);
    const pool = await queue.db();
    // Counted as the transactions begun on the pool while a flush runs: the running daemon's own
    // statements (a heartbeat, a sweep) can take a connection then too, but never open a transaction.
    let transactions = 0;
    const count = (client: { query: (...args: unknown[]) => unknown }) => {
      const query = client.query;
      client.query = function (this: unknown, ...args: unknown[]) {
        if (typeof args[0] === 'string' && /^\s*BEGIN\b/i.test(args[0])) transactions++;
        client.query = query;
        return query.apply(this, args);
      };
    };
    for (let i = 0; i < 1_000; i++) await bot.handleUpdate(textUpdate(1_000 + (i % 50), `m${i}`, { language: 'en' }));
    pool.on('acquire', count);
    await queue.flushUpdates();
    pool.off('acquire', count);
    assert.is(transactions, 1);
    const { rows } = await pool.query('SELECT count(*)::int AS n FROM broadcast_subscribers WHERE chat_id BETWEEN 1000 AND 1049');
    assert.is(rows[0].n, 50);
    // Seen again within the same minute: nothing left to write at all.
    for (let i = 0; i < 100; i++) queue.recordUpdate({ update_id: i, message: { message_id: i, date: 0, chat: privateChat(1_000 + (i % 50)), from: { id: 1, is_bot: false, first_name: 'x' }, text: 'x' } });
    pool.on('acquire', count);
    await queue.flushUpdates();
    pool.off('acquire', count);
    assert.is(transactions, 1, 'a chat already written this minute costs no write');
  });
});

test('/stop opts out with its reply, /start opts back in, and the next broadcast skips the opted-out and the blocked', async () => {
  await withTelegram({ queue: { capture: { flushMs: 60_000, optOutCommands: ['stop', '/unsubscribe'], optOutReply: 'Bye.' } } }, async ({ db, api, apiRoot, queue }) => {
    const seen: string[] = [];
    const bot = makeBot(apiRoot, queue, seen);
    for (const id of [601, 602, 603, 604]) await bot.handleUpdate(textUpdate(id, 'hi'));
    await bot.handleUpdate(textUpdate(601, '/stop'));
    await bot.handleUpdate(textUpdate(602, '/unsubscribe@fake_bot'));
    await bot.handleUpdate(textUpdate(603, '/stop'));
    await bot.handleUpdate(textUpdate(603, '/start'));
    await bot.handleUpdate(memberUpdate(604, 'kicked'));
    await queue.flushUpdates();
    assert.equal(api.delivered.filter((d) => d.text === 'Bye.').map((d) => d.chatId), [601, 602, 603]);
    assert.ok(seen.includes('start:603'), 'the bot\'s own /start handler still runs');
    const rows = (await db.pool.query('SELECT chat_id, opted_out, opted_out_at IS NOT NULL AS dated, unreachable_reason FROM broadcast_subscribers ORDER BY chat_id')).rows;
    assert.equal(rows, [
      { chat_id: 601, opted_out: true, dated: true, unreachable_reason: null },
      { chat_id: 602, opted_out: true, dated: true, unreachable_reason: null },
      // /stop then /start within one flush: the last word wins, and nothing changed.
      { chat_id: 603, opted_out: false, dated: false, unreachable_reason: null },
      { chat_id: 604, opted_out: false, dated: false, unreachable_reason: 'blocked' },
    ]);
    api.reset();
    const jobs = watchJobs(queue);
    const jobId = await insertJob(db, 'broadcast', { message: { text: 'news' }, audience: {} });
    await jobs.done(jobId);
    assert.equal(api.delivered.map((d) => d.chatId), [603]);
    assert.is((await jobRow(db, jobId)).result.skipped, 3);

    // Unblocked: reachable again.
    await bot.handleUpdate(memberUpdate(604, 'member'));
    await queue.flushUpdates();
    assert.is((await subscriber(queue, 604)).unreachable_reason, null);
  });
});

test('group membership: the bot removed from a group marks it unreachable, added back makes it reachable', async () => {
  await withTelegram({ queue: { capture: { flushMs: 60_000 } } }, async ({ apiRoot, queue }) => {
    const bot = makeBot(apiRoot, queue, []);
    await bot.handleUpdate(memberUpdate(-7001, 'member', 'group'));
    await queue.flushUpdates();
    assert.is((await subscriber(queue, -7001)).unreachable_reason, null);
    await bot.handleUpdate(memberUpdate(-7001, 'kicked', 'group'));
    await queue.flushUpdates();
    assert.is((await subscriber(queue, -7001)).unreachable_reason, 'kicked');
  });
});

test('a reply to a broadcast message and an opt-out after it are that broadcast\'s engagement', async () => {
  await withTelegram({ queue: { capture: { flushMs: 60_000 } } }, async ({ db, api, apiRoot, queue }) => {
    const bot = makeBot(apiRoot, queue, []);
    const jobs = watchJobs(queue);
    const jobId = await insertJob(db, 'broadcast', { message: { text: 'news' }, chat_ids: [701, 702] });
    await jobs.done(jobId);
    const { broadcast_id: broadcastId } = (await jobRow(db, jobId)).result;
    const sent = api.delivered.find((d) => d.chatId === 701)!;
    await bot.handleUpdate(textUpdate(701, 'tell me more', { replyTo: sent.messageId }));
    await bot.handleUpdate(textUpdate(702, 'unrelated', { replyTo: sent.messageId + 100 }));
    await bot.handleUpdate(textUpdate(702, '/stop'));
    await queue.flushUpdates();
    const events = (await db.pool.query('SELECT broadcast_id, chat_id, kind FROM broadcast_engagement ORDER BY kind, chat_id')).rows;
    assert.equal(events, [{ broadcast_id: broadcastId, chat_id: 702, kind: 'opt_out' }, { broadcast_id: broadcastId, chat_id: 701, kind: 'reply' }]);
  });
});

test('recordUpdate refuses what is no update, and impossible capture options are refused at creation', () => {
  const queue = new BroadcastQueue({ connectionString: 'postgres://nowhere/none' });
  assert.throws(() => queue.recordUpdate(null as never), (e: unknown) => e instanceof PayloadError);
  const problems = (() => {
    try {
      new BroadcastQueue({ capture: { optOutCommands: ['stop now'], optInCommands: ['stop'], optOutReply: '', flushMs: 5 } });
      return [];
    } catch (error) {
      assert.instance(error, ConfigError);
      return (error as ConfigError).problems;
    }
  })();
  assert.is(problems.length, 3, problems.join('; '));
  assert.match(problems.join('\n'), 'capture.optOutCommands must be a list of bot commands');
  assert.match(problems.join('\n'), 'capture.optOutReply must be null or a text');
  assert.match(problems.join('\n'), 'capture.flushMs must be between 10 and 60000 ms, got 5');
});

test.run();
