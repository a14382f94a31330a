// Tracked links expire linkTtlDays (BQ_LINK_TTL_DAYS, 30 by default) after their broadcast finished:
// an expired link gets the same plain 404 as a forged one and nothing is recorded; a broadcast still
// being sent never expires; an expired button still hands the bot its data, uncounted.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { BroadcastQueue } from '../../src/broadcast-queue.js';
import { LinkTokens } from '../../src/engagement/token.js';
import { startRedirectServer } from '../../src/engagement/redirect-server.js';
import { withTelegram } from '../helpers/telegram.js';

const SECRET = 'a-link-secret-of-its-own-32-chars-long!';
const tracking = { publicUrl: 'https://t.example.com', linkSecret: SECRET };
const TARGET = 'https://shop.example.com/sale';
const MESSAGE = { text: 'Sale', entities: [{ type: 'text_link', offset: 0, length: 4, url: TARGET }], reply_markup: { inline_keyboard: [[{ text: 'Like', callback_data: 'like:1' }]] } };
const tokens = new LinkTokens(SECRET);

/** A tracked broadcast as the engine leaves it; `finishedDaysAgo` null: still sending. */
async function broadcast(queue: BroadcastQueue, finishedDaysAgo: number | null): Promise<number> {
  const { rows } = await (await queue.db()).query(
    `INSERT INTO broadcasts (message, track, status, created_at, finished_at)
     VALUES ($1, true, $2, now() - interval '400 days', now() - make_interval(days => $3::int)) RETURNING broadcast_id`,
    [MESSAGE, finishedDaysAgo === null ? 'sending' : 'completed', finishedDaysAgo],
  );
  return rows[0].broadcast_id;
}

async function status(port: number, broadcastId: number, chatId: number): Promise<[number, string | null, string]> {
  const res = await fetch(`http://127.0.0.1:${port}/r/${tokens.encode({ kind: 'link', broadcastId, chatId, index: 0 })}`, { redirect: 'manual' });
  return [res.status, res.headers.get('location'), await res.text()];
}

async function recorded(queue: BroadcastQueue): Promise<unknown[]> {
  await queue.flushUpdates();
  return (await (await queue.db()).query(`SELECT broadcast_id, chat_id, kind FROM broadcast_engagement ORDER BY broadcast_id, kind`)).rows;
}

test('a link 31 days after its broadcast finished gets a plain 404 and nothing is recorded; 29 days after, or while sending, it redirects', async () => {
  await withTelegram({ queue: { tracking } }, async ({ queue }) => {
    const expired = await broadcast(queue, 31);
    const recent = await broadcast(queue, 29);
    const sending = await broadcast(queue, null);
    const server = await startRedirectServer(queue.redirectHandler(), '127.0.0.1', 0);
    try {
      assert.equal(await status(server.port, expired, 7), [404, null, 'Not found\n']);
      assert.equal(await status(server.port, recent, 7), [302, TARGET, '']);
      assert.equal(await status(server.port, sending, 7), [302, TARGET, '']);
      // Asked again, from the table now in memory: still refused.
      assert.equal(await status(server.port, expired, 8), [404, null, 'Not found\n']);
      assert.equal(await recorded(queue), [{ broadcast_id: recent, chat_id: 7, kind: 'click' }, { broadcast_id: sending, chat_id: 7, kind: 'click' }]);
    } finally {
      await server.close();
    }
  });
});

test('an expired button still hands the bot its own data through recordUpdate, but the press is not counted', async () => {
  await withTelegram({ queue: { tracking } }, async ({ queue }) => {
    const expired = await broadcast(queue, 31);
    const data = `bq:${tokens.encode({ kind: 'button', broadcastId: expired, chatId: 7, index: 0 })}`;
    const update = { update_id: 1, callback_query: { id: 'q', chat_instance: 'c', from: { id: 7, is_bot: false, first_name: 'x' }, data } };
    assert.is((await queue.recordUpdate(update)).press?.data, 'like:1');
    assert.is(update.callback_query.data, 'like:1');
    assert.equal(await recorded(queue), []);
  });
});

test('linkTtlDays: 0 keeps links forever; BQ_LINK_TTL_DAYS is read, and a negative or fractional value is refused in both', async () => {
  await withTelegram({ queue: { tracking: { ...tracking, linkTtlDays: 0 } } }, async ({ queue }) => {
    const old = await broadcast(queue, 3_000);
    const server = await startRedirectServer(queue.redirectHandler(), '127.0.0.1', 0);
    try {
      assert.equal(await status(server.port, old, 7), [302, TARGET, '']);
    } finally {
      await server.close();
    }
  });
  const env = { BQ_PUBLIC_URL: tracking.publicUrl, BQ_LINK_SECRET: SECRET };
  assert.is(loadConfig(env).linkTtlDays, 30);
  assert.is(loadConfig({ ...env, BQ_LINK_TTL_DAYS: '7' }).linkTtlDays, 7);
  assert.throws(() => loadConfig({ ...env, BQ_LINK_TTL_DAYS: '-1' }), (e: unknown) => e instanceof ConfigError && e.problems.some((p) => p.startsWith('BQ_LINK_TTL_DAYS must be a whole number')));
  assert.throws(() => new BroadcastQueue({ tracking: { ...tracking, linkTtlDays: 1.5 } }), (e: unknown) => e instanceof ConfigError && e.problems.some((p) => p.startsWith('tracking.linkTtlDays must be a whole number')));
});

test.run();
