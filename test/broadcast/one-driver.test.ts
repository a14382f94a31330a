import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import { jobRow, range, withTelegram } from '../helpers/telegram.js';
import { collectEvents, waitForEvent } from '../helpers/wait.js';

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
    const staleRunEnded = waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobId === first, SAFETY_MS);
    const second = (await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, payload) VALUES ('broadcast', $1) RETURNING job_id`, [JSON.stringify({ broadcast_id: broadcastId })])).rows[0].job_id;
    const secondDone = waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobId === second, SAFETY_MS);
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

test.run();
