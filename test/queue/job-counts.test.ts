// Finished-job totals and windows come from counts kept as jobs finish (sql/0007_job_counts.sql),
// not from the rows kept. After a mixed workload — claims, completions, failures, retries,
// snoozes, bqctl retry and cancel, the cleaner's deletes, SQL written by hand — every figure must
// equal a COUNT(*) over the table, before and after the counts are rolled up.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { retryJobs } from '../../src/queue/jobs-store.js';
import { cancelJobs } from '../../src/broadcast/control.js';
import { statistics } from '../../src/http/statistics.js';
import { silentLogger } from '../../src/log.js';
import { Claimer } from '../../src/queue/claimer.js';
import { deleteFinishedJobs } from '../../src/queue/cleaner.js';
import { Recorder, type Outcome } from '../../src/queue/recorder.js';
import { readQueueStatus } from '../../src/queue/status.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

async function assertCountsMatch(db: TestDatabase, when: string): Promise<void> {
  const s = await statistics(db.pool);
  const byType = await db.pool.query(`SELECT job_type, status, count(*)::int AS n FROM broadcast_queue_jobs GROUP BY 1, 2`);
  const expected: Record<string, Record<string, number>> = {};
  for (const r of byType.rows) (expected[r.job_type] ??= {})[r.status] = r.n;
  for (const [jobType, counts] of Object.entries(s.byJobType)) {
    for (const status of ['pending', 'processing', 'completed', 'failed', 'cancelled'] as const) {
      assert.is(counts[status], expected[jobType]?.[status] ?? 0, `${when}: ${jobType} ${status}`);
    }
  }
  assert.equal(Object.keys(s.byJobType).sort(), Object.keys(expected).sort(), `${when}: job types`);
  const [truth] = (await db.pool.query(`
    SELECT count(*)::int AS total,
           count(*) FILTER (WHERE attempts > 1)::int AS retried,
           count(*) FILTER (WHERE status = 'completed' AND finished_at > now() - interval '1 hour')::int AS completed_1h,
           count(*) FILTER (WHERE status = 'completed' AND finished_at > now() - interval '24 hours')::int AS completed_24h,
           count(*) FILTER (WHERE status = 'failed' AND finished_at > now() - interval '1 hour')::int AS failed_1h,
           count(*) FILTER (WHERE status = 'failed' AND finished_at > now() - interval '24 hours')::int AS failed_24h,
           avg(extract(epoch FROM finished_at - started_at)) FILTER (WHERE status = 'completed' AND finished_at > now() - interval '1 hour')::float8 AS avg_1h
      FROM broadcast_queue_jobs`)).rows;
  assert.equal(
    [s.totalJobs, s.retriedJobs, s.completedLastHour, s.completedLast24h, s.failedLastHour, s.failedLast24h],
    [truth.total, truth.retried, truth.completed_1h, truth.completed_24h, truth.failed_1h, truth.failed_24h],
    `${when}: total, retried, completed 1h/24h, failed 1h/24h`,
  );
  assert.ok(Math.abs((s.averageDurationSecondsLastHour ?? 0) - (truth.avg_1h ?? 0)) < 1e-6, `${when}: average duration ${s.averageDurationSecondsLastHour} vs ${truth.avg_1h}`);
  const status = await readQueueStatus(db.pool, 60_000);
  const byQueue = await db.pool.query(`SELECT queue, status, count(*)::int AS n FROM broadcast_queue_jobs GROUP BY 1, 2`);
  for (const r of byQueue.rows) assert.is(status.queues[r.queue]?.[r.status as 'pending'], r.n, `${when}: queue ${r.queue} ${r.status}`);
}

test('finished-job counts equal COUNT(*) after claims, outcomes, retries, cancels, deletes and hand-written SQL', async () => {
  const db = await createTestDatabase();
  const recorder = new Recorder(db.pool, 'd1', silentLogger());
  const claimer = new Claimer(db.pool, 'd1', ['broadcasts', 'other'], ['send', 'custom']);
  try {
    await db.pool.query(`INSERT INTO broadcast_queue_jobs (queue, job_type, max_attempts)
                         SELECT CASE WHEN g % 3 = 0 THEN 'other' ELSE 'broadcasts' END, CASE WHEN g % 2 = 0 THEN 'send' ELSE 'custom' END, 3
                           FROM generate_series(1, 300) g`);
    // Finished before this daemon: kept history, some of it older than the windows.
    await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, status, attempts, started_at, finished_at)
                         SELECT 'send', 'completed', 1, now() - interval '2 days 1 second', now() - interval '2 days' FROM generate_series(1, 50)`);
    await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, status, attempts, started_at, finished_at, last_error)
                         SELECT 'custom', 'failed', 2, now() - interval '31 minutes', now() - interval '30 minutes', 'x' FROM generate_series(1, 20)`);
    await assertCountsMatch(db, 'after the inserts');

    const outcomeFor = (i: number): Outcome =>
      i % 10 < 5 ? { kind: 'completed', result: { i } }
        : i % 10 < 7 ? { kind: 'failed', error: 'permanent', reason: 'handler_error' }
          : i % 10 < 9 ? { kind: 'retry', error: 'transient', reason: 'handler_error', delayMs: 0 }
            : { kind: 'snooze', delayMs: 0, error: null, reason: null };
    const first = await claimer.claim(200);
    await Promise.all(first.map((job, i) => recorder.record({ jobId: job.jobId, attempt: job.attempt, claimedAt: job.claimedAt, outcome: outcomeFor(i) })));
    await assertCountsMatch(db, 'after the first outcomes');

    const failed = (await db.pool.query(`SELECT job_id FROM broadcast_queue_jobs WHERE status = 'failed' ORDER BY job_id LIMIT 30`)).rows.map((r) => r.job_id);
    await retryJobs(db.pool, failed);
    const pending = (await db.pool.query(`SELECT job_id FROM broadcast_queue_jobs WHERE status = 'pending' ORDER BY job_id DESC LIMIT 40`)).rows.map((r) => r.job_id);
    await cancelJobs(db.pool, pending);
    await assertCountsMatch(db, 'after retry and cancel');
    await db.pool.query('SELECT broadcast_queue_roll_up_counts()');
    await assertCountsMatch(db, 'after a roll-up');

    const second = await claimer.claim(150);
    await Promise.all(second.map((job, i) => recorder.record({ jobId: job.jobId, attempt: job.attempt, claimedAt: job.claimedAt, outcome: outcomeFor(i + 3) })));
    assert.is(await deleteFinishedJobs(db.pool, 1), 50, 'the cleaner deleted the two-day-old jobs');
    await db.pool.query(`DELETE FROM broadcast_queue_jobs WHERE status = 'cancelled' AND job_id % 3 = 0`);
    await db.pool.query(`UPDATE broadcast_queue_jobs SET result = '{"edited": true}' WHERE status = 'completed' AND job_id % 4 = 0`);
    await db.pool.query(`UPDATE broadcast_queue_jobs SET queue = 'other' WHERE status = 'failed' AND job_id % 2 = 1`);
    await assertCountsMatch(db, 'after the cleaner and hand-written SQL');
    await db.pool.query('SELECT broadcast_queue_roll_up_counts()');
    await assertCountsMatch(db, 'after a second roll-up');
    const rows = (await db.pool.query('SELECT count(*)::int AS n FROM broadcast_queue_job_counts')).rows[0].n;
    assert.ok(rows <= 2 * 3 * 2 * 2, `a roll-up leaves one row per queue, type, status and retried (${rows})`);
  } finally {
    recorder.close();
    await db.drop();
  }
});

test('the counts start from the jobs that finished before the migration', async () => {
  const db = await createTestDatabase();
  try {
    // As if the table predated the triggers: drop them, write history, and run the counting step again.
    await db.pool.query(`DROP TRIGGER _200_count_inserted ON broadcast_queue_jobs`);
    await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, status, attempts, started_at, finished_at)
                         SELECT 'send', 'completed', 1 + g % 2, now() - interval '10 minutes', now() - interval '5 minutes' FROM generate_series(1, 40) g`);
    await db.pool.query(`CREATE TRIGGER _200_count_inserted AFTER INSERT ON broadcast_queue_jobs
                         REFERENCING NEW TABLE AS inserted_rows FOR EACH STATEMENT EXECUTE FUNCTION broadcast_queue_count_inserted()`);
    const { readFile } = await import('node:fs/promises');
    const { listMigrations, noTransactionSteps } = await import('../../src/db/migrate.js');
    const migration = (await listMigrations()).find((m) => m.version === 7)!;
    const steps = noTransactionSteps(await readFile(migration.file, 'utf8'), migration.file)!;
    const baseline = steps[steps.length - 1]!;
    await db.pool.query(baseline);
    await assertCountsMatch(db, 'after the baseline');
    await db.pool.query(baseline);
    await assertCountsMatch(db, 'after running the baseline twice');
  } finally {
    await db.drop();
  }
});

test('TRUNCATE of the jobs table empties the counts', async () => {
  const db = await createTestDatabase();
  try {
    await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, status, attempts, started_at, finished_at)
                         SELECT 'send', 'completed', 1, now() - interval '2 minutes', now() - interval '1 minute' FROM generate_series(1, 25)`);
    await assertCountsMatch(db, 'before the truncate');
    await db.pool.query('TRUNCATE broadcast_queue_jobs');
    await assertCountsMatch(db, 'after the truncate');
    await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, status, attempts, started_at, finished_at)
                         SELECT 'send', 'failed', 2, now() - interval '2 minutes', now() - interval '1 minute' FROM generate_series(1, 3)`);
    await assertCountsMatch(db, 'after new jobs finished');
  } finally {
    await db.drop();
  }
});

test.run();
