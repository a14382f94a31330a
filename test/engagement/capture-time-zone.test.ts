// capture.timeZone: Telegram updates carry no zone, so the bot says what it knows about each chat's
// and the capture writes it with the next flush. A zone that is no zone, or a callback that
// throws, costs that update's zone only: the rest of the flush is written.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Telegraf } from 'telegraf';
import type { Update } from 'telegraf/types';
import { ConfigError } from '../../src/errors.js';
import { BroadcastQueue } from '../../src/broadcast-queue.js';
import { createLogger } from '../../src/log.js';
import { TEST_TOKEN, withTelegram } from '../helpers/telegram.js';

let updateId = 1;
function message(chatId: number, text: string, language?: string, type: 'private' | 'group' = 'private'): Update {
  const chat = type === 'private' ? { id: chatId, type, first_name: `u${chatId}` } : { id: chatId, type, title: 'g' };
  const from = { id: Math.abs(chatId), is_bot: false, first_name: `u${chatId}`, ...(language && { language_code: language }) };
  return { update_id: updateId++, message: { message_id: updateId, date: Math.floor(Date.now() / 1000), chat, from, text } } as Update;
}

/** Warnings as parsed JSON lines; pino writes them synchronously, so they are here once the call that logs returns. */
function warnings(): { lines: Record<string, unknown>[]; log: ReturnType<typeof createLogger> } {
  const lines: Record<string, unknown>[] = [];
  return { lines, log: createLogger({ level: 'warn', destination: { write: (line: string) => void lines.push(JSON.parse(line)) } as never }) };
}

const row = async (queue: BroadcastQueue, chatId: number) =>
  (await (await queue.db()).query('SELECT time_zone, language_code, last_active_at FROM broadcast_subscribers WHERE chat_id = $1', [chatId])).rows[0];

test('a zone the callback returns for a private chat lands on the subscriber through the middleware; a group\'s update asks nothing', async () => {
  const zones: Record<number, string> = { 701: 'Europe/Berlin', 702: 'America/New_York' };
  const asked: number[] = [];
  const timeZone = (update: { message?: { chat: { id: number } } }) => {
    asked.push(update.message!.chat.id);
    return zones[update.message!.chat.id];
  };
  await withTelegram({ queue: { capture: { flushMs: 60_000, timeZone } } }, async ({ apiRoot, queue }) => {
    const bot = new Telegraf(TEST_TOKEN, { telegram: { apiRoot } });
    bot.use(queue.telegraf());
    await bot.handleUpdate(message(701, 'hello', 'de'));
    await bot.handleUpdate(message(702, 'hi'));
    await bot.handleUpdate(message(-703, 'in a group', undefined, 'group'));
    await queue.flushUpdates();
    assert.equal([(await row(queue, 701)).time_zone, (await row(queue, 701)).language_code], ['Europe/Berlin', 'de']);
    assert.is((await row(queue, 702)).time_zone, 'America/New_York');
    assert.equal(asked, [701, 702], 'only private chats have a zone of their own');
    zones[701] = 'Asia/Tokyo'; // the user told the bot they moved
    await bot.handleUpdate(message(701, 'moved'));
    await queue.flushUpdates();
    assert.is((await row(queue, 701)).time_zone, 'Asia/Tokyo');
  });
});

test('null or undefined from the callback leaves the stored zone alone, whoever set it', async () => {
  let answer: string | null | undefined = 'Europe/Berlin';
  await withTelegram({ queue: { capture: { flushMs: 60_000, timeZone: () => answer } } }, async ({ queue }) => {
    queue.recordUpdate(message(711, 'hello') as never);
    await queue.flushUpdates();
    assert.is((await row(queue, 711)).time_zone, 'Europe/Berlin');
    for (const next of [null, undefined]) {
      answer = next;
      queue.recordUpdate(message(711, `said ${next}`, 'fr') as never);
      await queue.flushUpdates();
      assert.equal([(await row(queue, 711)).time_zone, (await row(queue, 711)).language_code], ['Europe/Berlin', 'fr'], String(next));
    }
    await queue.setSubscriberTimeZone(711, 'Asia/Kolkata');
    queue.recordUpdate(message(711, 'again') as never);
    await queue.flushUpdates();
    assert.is((await row(queue, 711)).time_zone, 'Asia/Kolkata');
  });
});

test('a zone Intl does not know and a callback that throws drop that update\'s zone with one warning; the rest of the flush is written', async () => {
  const { lines, log } = warnings();
  const timeZone = (update: { message?: { chat: { id: number } } }) => {
    const id = update.message!.chat.id;
    if (id === 722) return 'Mars/Olympus';
    if (id === 723) throw new Error('zone lookup failed');
    return 'Europe/Paris';
  };
  await withTelegram({ queue: { log, capture: { flushMs: 60_000, timeZone } } }, async ({ queue }) => {
    await queue.setSubscriberTimeZone(722, 'Asia/Tokyo');
    await queue.setSubscriberTimeZone(723, 'Asia/Tokyo');
    for (const id of [721, 722, 723]) queue.recordUpdate(message(id, 'hello', 'it') as never);
    await queue.flushUpdates();
    assert.is((await row(queue, 721)).time_zone, 'Europe/Paris');
    for (const id of [722, 723]) {
      const r = await row(queue, id);
      assert.equal([r.time_zone, r.language_code], ['Asia/Tokyo', 'it'], `chat ${id}: its zone dropped, its activity written`);
      assert.ok(r.last_active_at instanceof Date);
    }
    const zoneLines = lines.filter((l) => l.chatId === 722 || l.chatId === 723);
    assert.is(zoneLines.length, 2, JSON.stringify(lines));
    assert.equal([zoneLines[0]!.chatId, zoneLines[0]!.timeZone], [722, 'Mars/Olympus']);
    assert.equal([zoneLines[1]!.chatId, zoneLines[1]!.err], [723, 'zone lookup failed']);
  });
});

test('a zone Intl knows and the server\'s tzdata does not is dropped for its chats only, with one warning each', async () => {
  const { lines, log } = warnings();
  const zones: Record<number, string> = { 731: 'Europe/Kyiv', 732: 'Europe/Berlin', 733: 'Europe/Kyiv' };
  await withTelegram({ queue: { log, capture: { flushMs: 60_000, timeZone: (u: { message?: { chat: { id: number } } }) => zones[u.message!.chat.id] } } }, async ({ queue }) => {
    const db = await queue.db();
    // A server whose tzdata predates Europe/Kyiv (2022b) refuses it as sql/0020's CHECK would.
    await db.query(`CREATE FUNCTION old_tzdata(z text) RETURNS boolean LANGUAGE plpgsql AS $$
      BEGIN IF z = 'Europe/Kyiv' THEN RAISE EXCEPTION 'time zone "%" not recognized', z USING ERRCODE = '22023'; END IF; RETURN true; END $$`);
    await db.query('ALTER TABLE broadcast_subscribers ADD CONSTRAINT old_tzdata CHECK (old_tzdata(time_zone))');
    await queue.setSubscriberTimeZone(731, 'Europe/Warsaw');
    for (const id of [731, 732, 733]) queue.recordUpdate(message(id, 'hello', 'uk') as never);
    await queue.flushUpdates();
    assert.equal([(await row(queue, 731)).time_zone, (await row(queue, 731)).language_code], ['Europe/Warsaw', 'uk']);
    assert.equal([(await row(queue, 732)).time_zone, (await row(queue, 732)).language_code], ['Europe/Berlin', 'uk']);
    assert.equal([(await row(queue, 733)).time_zone, (await row(queue, 733)).language_code], [null, 'uk']);
    const refused = lines.filter((l) => l.timeZone === 'Europe/Kyiv').map((l) => l.chatId);
    assert.equal(refused, [731, 733], JSON.stringify(lines));
    queue.recordUpdate(message(731, 'again') as never); // the same refused zone again: not retried, not warned again
    await queue.flushUpdates();
    assert.is(lines.filter((l) => l.timeZone === 'Europe/Kyiv').length, 2);
  });
});

test('capture.timeZone must be a function', () => {
  const error = (() => {
    try {
      new BroadcastQueue({ capture: { timeZone: 'Europe/Berlin' as never } });
    } catch (e) {
      return e;
    }
  })();
  assert.instance(error, ConfigError);
  assert.match((error as ConfigError).problems.join('\n'), 'capture.timeZone must be a function of the update returning an IANA time zone, got string');
});

test.run();
