import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import { insertJob, jobRow, withTelegram } from '../helpers/telegram.js';
import { waitForEvent } from '../helpers/wait.js';

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
    const noopJob = await insertJob(db, 'noop', {});
    const noopDone = await waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobId === noopJob, SAFETY_MS);
    assert.is(noopDone.outcome.kind, 'completed');
    const send = await jobRow(db, sendJob);
    assert.equal([send.status, send.attempts], ['pending', 0], 'the pause spent no attempt');
    assert.ok(new Date(send.run_at).getTime() > Date.now() + 60_000, 'the send waits for the end of the pause');
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

test.run();
