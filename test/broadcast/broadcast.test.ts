import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import { insertJob, jobRow, range, withTelegram } from '../helpers/telegram.js';
import { waitForEvent, watchJobs } from '../helpers/wait.js';

const finished = (jobId: number) => (e: JobEvent) => e.job.jobId === jobId && (e.outcome.kind === 'completed' || e.outcome.kind === 'failed');

test('an inline broadcast reaches every chat once and reports counts that match the stand-in', async () => {
  await withTelegram({}, async ({ db, api, queue }) => {
    const jobs = watchJobs(queue);
    const chats = range(1000, 50);
    const jobId = await insertJob(db, 'broadcast', { message: { text: 'Hello <b>all</b>', parse_mode: 'HTML' }, chat_ids: chats });
    const done = await jobs.done(jobId, finished(jobId), 20_000);
    assert.is(done.outcome.kind, 'completed');
    const row = await jobRow(db, jobId);
    assert.equal(row.result, { broadcast_id: row.payload.broadcast_id, status: 'completed', total: 50, sent: 50, failed: 0, blocked: 0, skipped: 0, unknown: 0 });
    assert.ok(chats.every((c) => api.deliveredCount(c) === 1), 'some chat did not get exactly one message');
    assert.is(api.delivered.length, 50);
    const b = (await db.pool.query('SELECT status, total, sent, job_id FROM broadcasts WHERE broadcast_id = $1', [row.payload.broadcast_id])).rows[0];
    assert.equal(b, { status: 'completed', total: 50, sent: 50, job_id: jobId });
  });
});

test('every Bot API error class lands in its own count, and unreachable chats are skipped next time', async () => {
  await withTelegram({}, async ({ db, api, queue }) => {
    const jobs = watchJobs(queue);
    api.setChatState(1, 'blocked');
    api.setChatState(2, 'deactivated');
    api.setChatState(3, 'kicked');
    api.setChatState(4, 'chat_deleted');
    api.setChatState(5, 'not_found');
    api.migrate(-6, -1000006);
    api.flaky(7, 2, 500);
    const chats = [1, 2, 3, 4, 5, -6, 7, 8];
    const jobId = await insertJob(db, 'broadcast', { message: { text: 'news' }, chat_ids: chats });
    await jobs.done(jobId, finished(jobId), 30_000);
    const result = (await jobRow(db, jobId)).result;
    assert.equal({ ...result, broadcast_id: 0 }, { broadcast_id: 0, status: 'completed', total: 8, sent: 3, blocked: 4, failed: 1, skipped: 0, unknown: 0 });
    assert.is(api.deliveredCount(-1000006), 1, 'the migrated group got it at its new id');
    assert.is(api.deliveredCount(7), 1, 'the flaky chat got it after retries');
    assert.is(api.deliveredCount(8), 1);
    const ledger = await db.pool.query('SELECT chat_id, status, outcome, attempts FROM broadcast_deliveries ORDER BY chat_id');
    const byChat = Object.fromEntries(ledger.rows.map((r) => [r.chat_id, r]));
    assert.equal([byChat[1].outcome, byChat[2].outcome, byChat[3].outcome, byChat[4].outcome, byChat[5].outcome], ['blocked', 'deactivated', 'kicked', 'chat_deleted', 'chat_not_found']);
    assert.equal([byChat[7].status, byChat[7].attempts], ['sent', 3]);
    assert.equal([byChat[-6].status, byChat[-6].outcome], ['sent', 'migrated']);

    const again = await insertJob(db, 'broadcast', { message: { text: 'more news' }, chat_ids: chats });
    await jobs.done(again, finished(again), 30_000);
    const second = (await jobRow(db, again)).result;
    assert.equal([second.sent, second.skipped, second.blocked, second.failed], [3, 5, 0, 0]);
  });
});

test('content errors stop the broadcast after a few identical ones instead of burning every call', async () => {
  await withTelegram({ queue: { rateLimit: 100 } }, async ({ db, api, queue }) => {
    const jobs = watchJobs(queue);
    const jobId = await insertJob(db, 'broadcast', { message: { text: 'Broken <b>markup', parse_mode: 'HTML' }, chat_ids: range(1, 200) });
    const done = await jobs.done(jobId, finished(jobId), 20_000);
    assert.is(done.outcome.kind, 'failed');
    const row = await jobRow(db, jobId);
    assert.match(row.last_error, /stopped after 3 identical content errors: Bad Request: can't parse entities/);
    const b = (await db.pool.query('SELECT status, failure_reason, total, failed, skipped FROM broadcasts')).rows[0];
    assert.is(b.status, 'failed');
    assert.is(b.total, 200);
    assert.is(b.failed + b.skipped, 200);
    const sendCalls = api.calls.filter((c) => c.method === 'sendMessage').length;
    assert.ok(sendCalls <= 10, `made ${sendCalls} calls for a message that cannot be parsed`);
  });
});

test('a broadcast row with a segment audience: opted-out and unreachable subscribers are skipped', async () => {
  await withTelegram({}, async ({ db, api, queue }) => {
    const jobs = watchJobs(queue);
    await db.pool.query(`
      INSERT INTO broadcast_subscribers (chat_id, tags, language_code, opted_out, unreachable_reason) VALUES
        (1, '{vip}', 'en', false, NULL), (2, '{vip}', 'de', false, NULL), (3, '{vip}', 'en', true, NULL),
        (4, '{vip}', 'en', false, 'blocked'), (5, '{free}', 'en', false, NULL)`);
    const { rows } = await db.pool.query(`INSERT INTO broadcasts (title, message, audience) VALUES ('Nov promo', '{"text": "promo"}', '{"tags_any": ["vip"]}') RETURNING broadcast_id`);
    const jobId = await insertJob(db, 'broadcast', { broadcast_id: rows[0].broadcast_id });
    await jobs.done(jobId, finished(jobId), 20_000);
    const result = (await jobRow(db, jobId)).result;
    assert.equal([result.total, result.sent, result.skipped], [4, 2, 2]);
    assert.equal(api.delivered.map((d) => d.chatId).sort(), [1, 2]);
    const skipped = await db.pool.query(`SELECT chat_id, outcome FROM broadcast_deliveries WHERE status = 'skipped' ORDER BY chat_id`);
    assert.equal(skipped.rows, [{ chat_id: 3, outcome: 'opted_out' }, { chat_id: 4, outcome: 'unreachable' }]);
  });
});

test('a frequency cap skips subscribers who already had enough broadcasts today', async () => {
  await withTelegram({}, async ({ db, queue }) => {
    const jobs = watchJobs(queue);
    await db.pool.query(`INSERT INTO broadcast_subscribers (chat_id) SELECT g FROM generate_series(1, 4) g`);
    const first = await insertJob(db, 'broadcast', { message: { text: 'one' }, chat_ids: [1, 2] });
    await jobs.done(first, finished(first), 20_000);
    const second = await insertJob(db, 'broadcast', { message: { text: 'two' }, audience: {}, frequency_cap: 1 });
    await jobs.done(second, finished(second), 20_000);
    const result = (await jobRow(db, second)).result;
    assert.equal([result.total, result.sent, result.skipped], [4, 2, 2]);
    const capped = await db.pool.query(`SELECT chat_id FROM broadcast_deliveries WHERE outcome = 'frequency_cap' ORDER BY chat_id`);
    assert.equal(capped.rows.map((r) => r.chat_id), [1, 2]);
  });
});

test('A/B variants are assigned by weight, the same way every time, and counted per variant', async () => {
  await withTelegram({}, async ({ db, api, queue }) => {
    const jobs = watchJobs(queue);
    const variants = [{ name: 'a', weight: 3, message: { text: 'Version A' } }, { name: 'b', weight: 1, message: { text: 'Version B' } }];
    const jobId = await insertJob(db, 'broadcast', { variants, chat_ids: range(1, 400) });
    await jobs.done(jobId, finished(jobId), 30_000);
    const result = (await jobRow(db, jobId)).result;
    assert.is(result.variants.a.sent + result.variants.b.sent, 400);
    assert.ok(result.variants.a.sent > 240 && result.variants.a.sent < 360, `a got ${result.variants.a.sent} of 400 at weight 3:1`);
    for (const d of api.delivered) {
      const variant = (await db.pool.query('SELECT variant FROM broadcast_deliveries WHERE chat_id = $1', [d.chatId])).rows[0].variant;
      assert.is(d.text, variant === 'a' ? 'Version A' : 'Version B');
      if (d.chatId === 10) break;
    }
    const rerun = await db.pool.query(
      `SELECT count(*)::int AS same FROM broadcast_deliveries d WHERE d.variant = (CASE WHEN ((hashint8extended(d.chat_id, d.broadcast_id) % 4) + 4) % 4 < 3 THEN 'a' ELSE 'b' END)`,
    );
    assert.is(rerun.rows[0].same, 400, 'assignment is a pure function of chat and broadcast');
  });
});

test('pause, resume and cancel are UPDATEs of the broadcasts row', async () => {
  await withTelegram({ queue: { rateLimit: 50 } }, async ({ db, api, queue }) => {
    const jobs = watchJobs(queue);
    const jobId = await insertJob(db, 'broadcast', { message: { text: 'slow' }, chat_ids: range(1, 300) });
    await waitForEvent(api, 'delivered');
    const broadcastId = (await jobRow(db, jobId)).payload.broadcast_id;
    await db.pool.query(`UPDATE broadcasts SET status = 'paused' WHERE broadcast_id = $1`, [broadcastId]);
    const snoozed = await jobs.done(jobId, undefined, 5_000);
    assert.is(snoozed.outcome.kind, 'snooze');
    // Paused means stopped between two sends: every call that reached Telegram is a 'sent' row,
    // none is left 'sending', the rest still wait, and the job is back in the queue.
    const deliveredWhilePaused = api.delivered.length;
    const ledger = await db.pool.query(`SELECT status, count(*)::int AS n FROM broadcast_deliveries WHERE broadcast_id = $1 GROUP BY status ORDER BY status`, [broadcastId]);
    const counts = Object.fromEntries(ledger.rows.map((r) => [r.status, r.n]));
    assert.equal({ sent: counts.sent, sending: counts.sending ?? 0 }, { sent: deliveredWhilePaused, sending: 0 }, JSON.stringify(counts));
    assert.is(counts.pending, 300 - deliveredWhilePaused);
    const paused = (await db.pool.query('SELECT status, sent FROM broadcasts WHERE broadcast_id = $1', [broadcastId])).rows[0];
    assert.equal(paused, { status: 'paused', sent: deliveredWhilePaused });
    assert.is((await jobRow(db, jobId)).status, 'pending');

    const resumed = waitForEvent(queue, 'job:start', (j: any) => j.jobId === jobId, 3_000);
    await db.pool.query(`UPDATE broadcasts SET status = 'sending' WHERE broadcast_id = $1`, [broadcastId]);
    await resumed;
    await waitForEvent(api, 'delivered', (d: any) => true, 3_000);
    assert.ok(api.delivered.length > deliveredWhilePaused, 'resumed');

    await db.pool.query(`UPDATE broadcasts SET status = 'cancelled' WHERE broadcast_id = $1`, [broadcastId]);
    const done = await jobs.done(jobId, finished(jobId), 5_000);
    assert.is(done.outcome.kind, 'completed');
    const result = (await jobRow(db, jobId)).result;
    assert.is(result.status, 'cancelled');
    assert.is(result.sent, api.delivered.length);
    assert.is(result.sent + result.skipped, 300);
    assert.ok(range(1, 300).every((chat) => api.deliveredCount(chat) <= 1), 'a chat got the message twice across the pause');
  });
});

test('a broadcast payload that names no recipients, or a message Telegram would refuse, fails at once', async () => {
  await withTelegram({}, async ({ db, api, queue }) => {
    const cases: [unknown, RegExp][] = [
      [{ message: { text: 'hi' } }, /chat_ids or audience/],
      [{ chat_ids: [1] }, /broadcast_id, or message/],
      [{ message: { text: 'x'.repeat(5000) }, chat_ids: [1] }, /text must be 1 to 4096 characters/],
      [{ broadcast_id: 'seven' }, /broadcast_id must be a positive integer/],
      [{ broadcast_id: 999 }, /does not exist/],
      [{ message: { text: 'hi' }, audience: { tag: ['x'] } }, /unknown filter "tag"/],
    ];
    for (const [payload, expected] of cases) {
      // Listened for before the INSERT: a payload refused at once can fail before its reply is read.
      const done = waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobType === 'broadcast');
      const jobId = await insertJob(db, 'broadcast', payload);
      assert.is((await done).job.jobId, jobId);
      const row = await jobRow(db, jobId);
      assert.is(row.status, 'failed', JSON.stringify(payload));
      assert.match(row.last_error, expected);
    }
    assert.is(api.delivered.length, 0);
    assert.is((await db.pool.query('SELECT count(*)::int AS n FROM broadcasts')).rows[0].n, 0, 'no half-made broadcast left behind');
  });
});

test.run();
