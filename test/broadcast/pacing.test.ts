// A broadcast sending through the shared timeline (broadcast_rate_limits): late timers, a timeline
// reserved far ahead, 429 pauses. Bounds on time live where time can be measured: that catching up
// after a stall keeps every second within the limit is checked by every chaos scenario under
// --stress (busiest second against the limit while daemons are SIGSTOPped, no 429). A catch-up may
// send a few messages at once (RateLimiter.catchUp: only as many as the timeline left unused just
// before), so "no burst" is not the property; the limit in every second is. That the next batch
// is reserved before the current one ends is checked by bench/'s "1000/s with 1 daemon: >= 99 % of
// the paced rate" (it was 3-4 % lower while the next batch was reserved late).
import { setTimeout as delay } from 'node:timers/promises';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RateLimiter } from '../../src/telegram/rate-limiter.js';
import { insertJob, jobRow, range, withTelegram } from '../helpers/telegram.js';
import { until, watchJobs } from '../helpers/wait.js';

test('a broadcast still finishes when every timer fires late (a starved event loop)', async () => {
  // Every wait for a send slot returns 20 ms after the slot, as on a machine whose event loop is
  // always that far behind: past the 10 ms a slot may be late, which once made the drain drop
  // every slot, give the rows back, reserve again, and never send.
  // Still a prototype patch: a sleep seam in waitForSlot made only waits late, and slots already
  // due came back on time, so the test passed with the fix reverted (MAX_DROPPED_IN_A_ROW = ∞).
  const original = RateLimiter.prototype.waitForSlot;
  RateLimiter.prototype.waitForSlot = async function (slot, rate, signal) {
    const ok = await original.call(this, slot, rate, signal);
    const late = slot + 20 - Date.now();
    if (late > 0) await delay(late);
    return ok;
  };
  try {
    await withTelegram({ queue: { rateLimit: 50 } }, async ({ db, queue }) => {
      const jobs = watchJobs(queue);
      const jobId = await insertJob(db, 'broadcast', { message: { text: 'slowly' }, chat_ids: range(1, 12) });
      const done = await jobs.done(jobId, undefined, 60_000);
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

test('a broadcast cut by a 429 storm sends every row once after the pause, without spending an attempt', async () => {
  // The chaos run's broadcast stalled for 10-17 s after each 429 storm: while paused it kept
  // claiming rows, reserving slots for them and handing them back, ~200 ms of budget per turn.
  // How soon sending resumes is a bound on time, so it is chaos/telegram.ts's "resumed after each
  // storm" check; here, what a storm must not change.
  await withTelegram({ api: { retryAfterSeconds: 1 }, queue: { rateLimit: 100 } }, async ({ db, api, queue }) => {
    const jobs = watchJobs(queue);
    const jobId = await insertJob(db, 'broadcast', { message: { text: 'storm' }, chat_ids: range(1, 300) });
    await api.waitFor('delivered');
    api.setFaults({ storm: true });
    await api.waitFor('call', (c) => c.status === 429);
    api.setFaults({ storm: false });
    const done = await jobs.done(jobId, undefined, 60_000);
    assert.is((done.outcome as any).result?.sent, 300);
    assert.ok(api.tooManyRequests > 0);
    assert.ok(range(1, 300).every((chat) => api.deliveredCount(chat) === 1), 'a chat missed or got twice');
    const attempts = await db.pool.query(`SELECT max(attempts)::int AS max FROM broadcast_deliveries`);
    assert.is(attempts.rows[0].max, 1, 'a deferred row spent an attempt');
  });
});

test.run();
