import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { finishBroadcast } from '../../src/broadcast/finish.js';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import { createTestDatabase } from '../helpers/db.js';
import { jobRow, range, withTelegram } from '../helpers/telegram.js';
import { collectEvents, until, watchJobs } from '../helpers/wait.js';
import { DriverLostError } from '../../src/errors.js';

// Only keeps a broken run from hanging the suite; nothing asserts on time.
const SAFETY_MS = 180_000;

async function storedBroadcast(db: { pool: { query: (sql: string, params?: unknown[]) => Promise<{ rows: any[] }> } }, chats: number[]): Promise<number> {
  const { rows } = await db.pool.query(`INSERT INTO broadcasts (message, audience) VALUES ('{"text": "once"}', $1) RETURNING broadcast_id`, [JSON.stringify({ chat_ids: chats })]);
  return rows[0].broadcast_id;
}

test('two jobs for one broadcast: one drives it, the other ends without touching a row', async () => {
  // A plain SQL INSERT and queueBroadcast(id) carry no job key: two jobs for one 3,000-chat
  // broadcast both drove it, and the first to finish flipped the other's in-flight rows to
  // unknown (each of those messages had arrived).
  await withTelegram({ api: { latencyMs: 40 }, queue: { rateLimit: 1000, concurrency: 4 } }, async ({ db, api, queue }) => {
    const chats = range(1, 1500);
    const broadcastId = await storedBroadcast(db, chats);
    const finished = collectEvents<JobEvent>(queue, 'job:done', 2, (e) => e.job.jobType === 'broadcast', SAFETY_MS);
    const { rows } = await db.pool.query(
      `INSERT INTO broadcast_queue_jobs (job_type, payload) VALUES ('broadcast', $1), ('broadcast', $1) RETURNING job_id`,
      [JSON.stringify({ broadcast_id: broadcastId })],
    );
    const done = await finished;
    assert.equal(done.map((e) => e.outcome.kind), ['completed', 'completed']);
    const results = await Promise.all(rows.map(async (r) => (await jobRow(db, r.job_id)).result));
    const drove = results.filter((r) => r.status === 'completed');
    const ended = results.filter((r) => r.status === 'driven_by_another_job');
    assert.is(drove.length, 1, JSON.stringify(results));
    assert.is(ended.length, 1, JSON.stringify(results));
    assert.equal({ ...drove[0], broadcast_id: 0 }, { broadcast_id: 0, status: 'completed', total: 1500, sent: 1500, failed: 0, blocked: 0, skipped: 0, unknown: 0 });
    assert.ok(chats.every((c) => api.deliveredCount(c) === 1), 'some chat did not get exactly one message');
    const ledger = await db.pool.query(`SELECT status, count(*)::int AS n FROM broadcast_deliveries GROUP BY status`);
    assert.equal(ledger.rows, [{ status: 'sent', n: 1500 }]);
  });
});

test('a rescued run that is still alive stops writing once another run has taken its broadcast over', async () => {
  // A hung daemon declared dead keeps running its handler: its claims and outcomes must not mix
  // with those of the run that took the broadcast over.
  await withTelegram({ queue: { rateLimit: 50, concurrency: 4 } }, async ({ db, api, queue }) => {
    const chats = range(1, 300);
    const broadcastId = await storedBroadcast(db, chats);
    const first = (await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, payload) VALUES ('broadcast', $1) RETURNING job_id`, [JSON.stringify({ broadcast_id: broadcastId })])).rows[0].job_id;
    await api.waitFor('delivered', () => api.delivered.length >= 20);
    // What the sweep does to a dead daemon's job, with the new run due only when we say so.
    await db.pool.query(`UPDATE broadcast_queue_jobs SET status = 'pending', locked_by = NULL, run_at = now() + interval '1 hour' WHERE job_id = $1`, [first]);
    const jobs = watchJobs(queue);
    const staleRunEnded = jobs.done(first, undefined, SAFETY_MS);
    const second = (await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, payload) VALUES ('broadcast', $1) RETURNING job_id`, [JSON.stringify({ broadcast_id: broadcastId })])).rows[0].job_id;
    const secondDone = jobs.done(second, undefined, SAFETY_MS);
    const stale = await staleRunEnded;
    // It stopped at its next ledger write instead of sending on to the end.
    assert.is(stale.outcome.kind, 'snooze', JSON.stringify(stale.outcome));
    assert.match((stale.outcome as { error: string }).error, /no longer drives broadcast/);
    const done = await secondDone;
    assert.is(done.outcome.kind, 'completed');
    const result = (await jobRow(db, second)).result;
    assert.is(result.status, 'completed');
    assert.is(result.sent + result.unknown, 300);
    assert.ok(chats.every((c) => api.deliveredCount(c) <= 1), 'a chat got the message twice');
    const sentRows = await db.pool.query(`SELECT chat_id FROM broadcast_deliveries WHERE status = 'sent'`);
    assert.ok(sentRows.rows.every((r) => api.deliveredCount(Number(r.chat_id)) === 1), 'a row marked sent was never delivered');
  });
});

test('a takeover while the driver finishes: no webhook job is left behind, and the finish reports the loss', async () => {
  // The webhook insert read the driver without a lock: it went in while the broadcast UPDATE,
  // waiting for the takeover's row lock, then matched nothing, so no broadcast named the webhook
  // job, and the finish logged "broadcast finished" all the same.
  const db = await createTestDatabase();
  const takeover = new pg.Client({ connectionString: db.url });
  try {
    await takeover.connect();
    const jobs = (await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, payload, status, locked_by, attempts, started_at) VALUES ('broadcast', '{}', 'processing', 'd1', 1, now()), ('broadcast', '{}', 'processing', 'd2', 1, now()) RETURNING job_id, started_at::text AS claimed_at`)).rows;
    const { rows } = await db.pool.query(
      `INSERT INTO broadcasts (message, status, job_id, started_at, driver_job_id, driver_claimed_at) VALUES ('{"text": "hi"}', 'sending', $1, now(), $1, $2::timestamptz) RETURNING broadcast_id`,
      [jobs[0].job_id, jobs[0].claimed_at],
    );
    const broadcastId = rows[0].broadcast_id;
    await takeover.query('BEGIN');
    await takeover.query('SELECT 1 FROM broadcasts WHERE broadcast_id = $1 FOR UPDATE', [broadcastId]);
    const counts = { total: 0, sent: 0, failed: 0, blocked: 0, skipped: 0, unknown: 0 };
    const finish = finishBroadcast(db.pool, { broadcastId, jobId: jobs[0].job_id, claimedAt: jobs[0].claimed_at }, { status: 'completed', reason: null, counts, queue: 'broadcasts', webhook: true })
      .then(() => null, (error: unknown) => error);
    const takeoverPid = (await takeover.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
    await until(async () => (await db.pool.query(`SELECT 1 FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))`, [takeoverPid])).rows.length > 0, 10_000, 'the finish to wait for the takeover');
    await takeover.query('UPDATE broadcasts SET driver_job_id = $2, driver_claimed_at = $3::timestamptz, job_id = $2 WHERE broadcast_id = $1', [broadcastId, jobs[1].job_id, jobs[1].claimed_at]);
    await takeover.query('COMMIT');
    const error = await finish;
    const hooks = await db.pool.query(`SELECT job_id FROM broadcast_queue_jobs WHERE job_type = 'webhook'`);
    assert.equal(hooks.rows, [], 'a webhook job was enqueued that no broadcast names');
    assert.ok(error instanceof DriverLostError, `the finish did not report the lost broadcast: ${String(error)}`);
    const after = (await db.pool.query('SELECT status, webhook_job_id FROM broadcasts WHERE broadcast_id = $1', [broadcastId])).rows[0];
    assert.equal(after, { status: 'sending', webhook_job_id: null });
  } finally {
    await takeover.end().catch(() => undefined);
    await db.drop();
  }
});

test.run();
