import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import { insertJob, jobRow, withTelegram } from '../helpers/telegram.js';
import { waitForEvent, watchJobs } from '../helpers/wait.js';
import { createTestDatabase } from '../helpers/db.js';
import { RateLimiter } from '../../src/telegram/rate-limiter.js';
import { silentLogger } from '../../src/log.js';

// Only keeps a broken run from hanging the suite: the pauses below last ten minutes, so a job
// that slept through one in its worker slot could never meet these.
const SAFETY_MS = 60_000;

/** What a 429 answered to another daemon leaves in the shared row. */
async function pauseEveryDaemon(db: { pool: { query: (sql: string) => Promise<unknown> } }): Promise<void> {
  await db.pool.query(`INSERT INTO broadcast_rate_limits (bot_id, paused_until, pause_reason) VALUES (123456, now() + interval '10 minutes', 'Too Many Requests: retry after 600')
                       ON CONFLICT (bot_id) DO UPDATE SET paused_until = EXCLUDED.paused_until, pause_reason = EXCLUDED.pause_reason`);
}

test('a send job that meets a 429 pause gives its worker slot back, and other job types run meanwhile', async () => {
  await withTelegram({ queue: { concurrency: 1, handlers: { noop: async () => 'ran' } } }, async ({ db, api, queue }) => {
    await pauseEveryDaemon(db);
    const sendDone = waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobType === 'send', SAFETY_MS);
    const sendJob = await insertJob(db, 'send', { chat_id: 7, message: { text: 'after the pause' } });
    const snoozed = await sendDone;
    assert.is(snoozed.outcome.kind, 'snooze');
    const jobs = watchJobs(queue);
    const noopJob = await insertJob(db, 'noop', {});
    const noopDone = await jobs.done(noopJob, undefined, SAFETY_MS);
    assert.is(noopDone.outcome.kind, 'completed');
    const send = await jobRow(db, sendJob);
    assert.equal([send.status, send.attempts], ['pending', 0], 'the pause spent no attempt');
    assert.ok(new Date(send.run_at).getTime() > Date.now() + 60_000, 'the send waits for the end of the pause');
    // Not for ever: the pause's length once came back from PostgreSQL as a string, Date.now() + it
    // concatenated, and every job snoozed for 56,000 years (the chaos telegram scenario stalled).
    assert.ok(new Date(send.run_at).getTime() < Date.now() + 11 * 60_000, `the send waits for the pause only, not until ${send.run_at}`);
    assert.is(api.calls.filter((c) => c.method === 'sendMessage').length, 0, 'nothing was sent during the pause');
  });
});

test('stop() during a 429 pause does not wait the pause out', async () => {
  await withTelegram({ queue: { concurrency: 2, shutdownTimeoutMs: 1_000 } }, async ({ db, queue }) => {
    await pauseEveryDaemon(db);
    const started = waitForEvent(queue, 'job:start', () => true, SAFETY_MS);
    const sendJob = await insertJob(db, 'send', { chat_id: 7, message: { text: 'after the pause' } });
    await started;
    let timer: NodeJS.Timeout | undefined;
    const first = await Promise.race([
      queue.stop().then(() => 'stopped'),
      new Promise((resolve) => (timer = setTimeout(() => resolve('still waiting'), SAFETY_MS))),
    ]);
    clearTimeout(timer);
    assert.is(first, 'stopped');
    const send = await jobRow(db, sendJob);
    assert.equal([send.status, send.attempts], ['pending', 0]);
  });
});

test("a daemon that learns of another daemon's 429 pauses until that pause ends, not for ever", async () => {
  // chaos telegram: PostgreSQL's numeric came back as a string, Date.now() + '993.2' concatenated,
  // and the daemon's local pause ran to the year 58,000: its broadcast slept, its send jobs too.
  const db = await createTestDatabase();
  try {
    await pauseEveryDaemon(db);
    const limiter = new RateLimiter(db.pool, 123456, silentLogger());
    const turn = await limiter.reserveForChat(7, 1_000, 30);
    assert.ok('pausedMs' in turn, 'the shared pause is seen');
    assert.type((turn as { pausedMs: number }).pausedMs, 'number');
    assert.ok(limiter.pausedUntil > Date.now() + 60_000, 'this daemon pauses too');
    assert.ok(limiter.pausedUntil < Date.now() + 11 * 60_000, `and only until the shared pause ends (local pause until ${limiter.pausedUntil})`);
  } finally {
    await db.drop();
  }
});

test.run();
