// Regressions for what a review of the code found; each test is named after what broke.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BroadcastQueue } from '../../src/broadcast-queue.js';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import { CLAIM_SQL } from '../../src/queue/claimer.js';
import { RateLimiter } from '../../src/telegram/rate-limiter.js';
import { Cleaner } from '../../src/queue/cleaner.js';
import { silentLogger } from '../../src/log.js';
import { createTestDatabase } from '../helpers/db.js';
import { insertJob, jobRow, range, withTelegram } from '../helpers/telegram.js';
import { until, waitForEvent } from '../helpers/wait.js';

test('a send cut off mid-call by shutdown fails as unknown instead of going back to the queue', async () => {
  await withTelegram({ queue: { shutdownTimeoutMs: 200 } }, async ({ db, api, queue }) => {
    api.setFaults({ hangRate: 1 });
    const onTheWire = api.waitFor('call', (c) => c.method === 'sendMessage');
    const jobId = await insertJob(db, 'send', { chat_id: 42, message: { text: 'maybe delivered' } });
    await onTheWire;
    await queue.stop();
    const row = await jobRow(db, jobId);
    assert.is(row.status, 'failed', 'handed back, the next daemon would send it again');
    assert.match(row.last_error, /outcome unknown/);
  });
});

test('a result PostgreSQL refuses fails that job and later outcomes are still written', async () => {
  const db = await createTestDatabase();
  const queue = new BroadcastQueue({
    connectionString: db.url,
    handlers: {
      // A NUL character is valid JSON but cannot be stored in jsonb; a BigInt cannot be serialised.
      nul: () => ({ preview: 'a\u0000b' }),
      bigint: () => ({ n: 10n }),
      fine: () => ({ ok: true }),
    },
  });
  try {
    await queue.start();
    for (const type of ['nul', 'bigint']) {
      const jobId = await insertJob(db, type, {});
      const done = await waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobId === jobId);
      assert.ok(done.recorded, `${type}: the outcome was not written`);
      const row = await jobRow(db, jobId);
      assert.is(row.status, 'failed', `${type}: ${row.status}`);
      assert.match(row.last_error, /result could not be stored/);
    }
    const jobId = await insertJob(db, 'fine', {});
    await waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobId === jobId);
    const row = await jobRow(db, jobId);
    assert.is(row.status, 'completed');
    assert.equal(row.result, { ok: true });
  } finally {
    await queue.stop();
    await db.drop();
  }
});

test('the cleaner deletes per-chat pacing rows nobody can need any more', async () => {
  const db = await createTestDatabase();
  try {
    await db.pool.query(`INSERT INTO broadcast_chat_pacing (bot_id, chat_id, next_allowed_at)
                         SELECT 1, g, now() - interval '2 minutes' FROM generate_series(1, 2500) g
                         UNION ALL SELECT 1, 9999, now() + interval '1 second'`);
    const cleaner = new Cleaner(db.pool as never, 7, silentLogger());
    await cleaner.run();
    const { rows } = await db.pool.query('SELECT chat_id FROM broadcast_chat_pacing');
    assert.equal(rows, [{ chat_id: 9999 }]);
  } finally {
    await db.drop();
  }
});

test('a claim does not walk past a backlog of job types this daemon does not run', async () => {
  const db = await createTestDatabase();
  try {
    await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, payload)
                         SELECT 'send', '{}'::jsonb FROM generate_series(1, 5000) UNION ALL SELECT 'mine', '{}'::jsonb`);
    await db.pool.query('ANALYZE broadcast_queue_jobs');
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      const { rows } = await client.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${CLAIM_SQL}`, [['broadcasts'], ['mine'], 10, 'test-daemon']);
      await client.query('ROLLBACK');
      const removed = (node: any): number => (node['Rows Removed by Filter'] ?? 0) + (node.Plans ?? []).reduce((n: number, p: any) => n + removed(p), 0);
      assert.ok(removed(rows[0]['QUERY PLAN'][0].Plan) < 100, `the claim filtered ${removed(rows[0]['QUERY PLAN'][0].Plan)} rows of other job types`);
    } finally {
      client.release();
    }
  } finally {
    await db.drop();
  }
});

test('a failed subscriber update after a 403 neither escapes as an unhandled rejection nor loses the outcome', async () => {
  const escaped: unknown[] = [];
  const onUnhandled = (reason: unknown) => escaped.push(reason);
  process.on('unhandledRejection', onUnhandled);
  try {
    await withTelegram({}, async ({ db, api, queue }) => {
      await db.pool.query(`CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'subscribers are read-only here'; END $$;
                           CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON broadcast_subscribers FOR EACH ROW EXECUTE FUNCTION refuse()`);
      for (const chat of [1, 2, 3]) api.setChatState(chat, 'blocked');
      const jobId = await insertJob(db, 'broadcast', { message: { text: 'hi' }, chat_ids: [1, 2, 3, 4] });
      const done = await waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobId === jobId);
      assert.is(done.outcome.kind, 'completed', JSON.stringify(done.outcome));
      const { rows } = await db.pool.query(`SELECT status, count(*)::int AS n FROM broadcast_deliveries GROUP BY status ORDER BY status`);
      assert.equal(rows, [{ status: 'failed', n: 3 }, { status: 'sent', n: 1 }]);
    });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(escaped.map(String), []);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});

test('a broadcast still finishes when every timer fires late (a starved event loop)', async () => {
  // Every wait for a send slot returns 20 ms after the slot, as on a machine whose event loop is
  // always that far behind: past the 10 ms a slot may be late, which once made the drain drop
  // every slot, give the rows back, reserve again, and never send.
  const original = RateLimiter.prototype.waitForSlot;
  RateLimiter.prototype.waitForSlot = async function (slot, rate, signal) {
    const ok = await original.call(this, slot, rate, signal);
    const late = slot + 20 - Date.now();
    if (late > 0) await new Promise((resolve) => setTimeout(resolve, late));
    return ok;
  };
  try {
    await withTelegram({ queue: { rateLimit: 50 } }, async ({ db, queue }) => {
      const jobId = await insertJob(db, 'broadcast', { message: { text: 'slowly' }, chat_ids: range(1, 12) });
      const done = await waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobId === jobId, 60_000);
      assert.is(done.outcome.kind, 'completed');
      const { rows } = await db.pool.query(`SELECT status, count(*)::int AS n FROM broadcast_deliveries GROUP BY status`);
      assert.equal(rows, [{ status: 'sent', n: 12 }]);
    });
  } finally {
    RateLimiter.prototype.waitForSlot = original;
  }
});

test('a broadcast waiting out a pushed-back timeline marks no row sending and stops at once on shutdown', async () => {
  await withTelegram({ queue: { shutdownTimeoutMs: 1_000 } }, async ({ db, queue }) => {
    // As after another daemon's 429: the shared timeline is reserved two minutes ahead.
    await db.pool.query(`UPDATE broadcast_rate_limits SET next_slot_at = now() + interval '2 minutes'`);
    const { rowCount } = await db.pool.query(`SELECT 1 FROM broadcast_rate_limits`);
    assert.is(rowCount, 1, 'the daemon registered its bot');
    const jobId = await insertJob(db, 'broadcast', { message: { text: 'later' }, chat_ids: range(1, 5) });
    await until(async () => ((await db.pool.query(`SELECT count(*)::int AS n FROM broadcast_deliveries`)).rows[0].n === 5 ? true : null));
    let timer: NodeJS.Timeout | undefined;
    const stopped = await Promise.race([
      queue.stop().then(() => 'stopped'),
      new Promise((resolve) => (timer = setTimeout(() => resolve('still waiting'), 30_000))),
    ]);
    clearTimeout(timer);
    assert.is(stopped, 'stopped', 'shutdown waited out the pushed-back timeline');
    const { rows } = await db.pool.query(`SELECT status, count(*)::int AS n FROM broadcast_deliveries GROUP BY status`);
    assert.equal(rows, [{ status: 'pending', n: 5 }]);
    assert.is((await jobRow(db, jobId)).status, 'pending');
  });
});

test.run();
