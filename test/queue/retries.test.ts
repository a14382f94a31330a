import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BroadcastQueue, type BroadcastQueueOptions } from '../../src/broadcast-queue.js';
import { HaltError, PayloadError, PermanentError, RetriableError, SnoozeError } from '../../src/errors.js';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import { retryDelayMs } from '../../src/time.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { waitForEvent, watchJobs } from '../helpers/wait.js';

const HOUR_MS = 3_600_000;

async function withQueue(handlers: BroadcastQueueOptions['handlers'], body: (queue: BroadcastQueue, db: TestDatabase) => Promise<void>, retryBaseMs = 200) {
  const db = await createTestDatabase();
  const queue = new BroadcastQueue({ connectionString: db.url, sweepMs: HOUR_MS, retryBaseMs, retryMaxMs: 10_000, handlers });
  try {
    await queue.start();
    await body(queue, db);
  } finally {
    await queue.stop();
    await db.drop();
  }
}

const jobRow = (db: TestDatabase, jobId: number) => db.pool.query('SELECT * FROM broadcast_queue_jobs WHERE job_id = $1', [jobId]).then((r) => r.rows[0]);

test('backoff doubles from the base and stays under the cap', () => {
  const policy = { baseMs: 60_000, maxMs: 3_600_000 };
  const noJitter = () => 0.5;
  assert.equal([2, 3, 4, 5].map((n) => retryDelayMs(n, policy, noJitter)), [60_000, 120_000, 240_000, 480_000]);
  assert.is(retryDelayMs(30, policy, () => 1), 3_600_000);
  const jittered = retryDelayMs(2, policy, () => 0);
  assert.ok(jittered >= 54_000 && jittered <= 66_000);
});

test('a retriable error retries at its run_at and then completes', async () => {
  let calls = 0;
  await withQueue({ flaky: () => { if (++calls === 1) throw new Error('upstream 503'); return 'ok'; } }, async (queue, db) => {
    const jobs = watchJobs(queue);
    const { rows } = await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type) VALUES ('flaky') RETURNING job_id`);
    const failed = await jobs.done(rows[0].job_id);
    assert.is(failed.outcome.kind, 'retry');
    const afterFailure = await jobRow(db, rows[0].job_id);
    assert.is(afterFailure.status, 'pending');
    assert.is(afterFailure.last_error, 'upstream 503');
    const retried = await jobs.done(rows[0].job_id, undefined, 5_000);
    assert.is(retried.outcome.kind, 'completed');
    const final = await jobRow(db, rows[0].job_id);
    assert.is(final.status, 'completed');
    assert.is(final.attempts, 2);
    assert.ok(final.started_at >= afterFailure.run_at, 'second attempt started before its run_at');
    assert.is(final.errors.length, 1);
    assert.equal({ attempt: final.errors[0].attempt, error: final.errors[0].error }, { attempt: 1, error: 'upstream 503' });
  });
});

test('each outcome records its reason code: a RetriableError names its own, any other error is a handler_error', async () => {
  const handlers: BroadcastQueueOptions['handlers'] = {
    named: () => { throw new RetriableError('upstream took too long', { reason: 'timeout' }); },
    plain: () => { throw new Error('upstream 503'); },
    // A plain JavaScript caller may pass anything: outside the closed set counts as the default.
    unknown: () => { throw new RetriableError('odd', { reason: 'not-a-code' as never }); },
    permanent: () => { throw new PermanentError('gone for good'); },
    payload: () => { throw new PayloadError('payload.x is missing'); },
    snooze: () => { throw new SnoozeError(HOUR_MS, 'later'); },
    halt: () => { throw new HaltError('stop everything'); },
  };
  const expected: Record<string, [string, string]> = {
    named: ['retry', 'timeout'], plain: ['retry', 'handler_error'], unknown: ['retry', 'handler_error'], permanent: ['failed', 'handler_error'],
    payload: ['failed', 'invalid_payload'], snooze: ['snooze', 'snoozed'], halt: ['snooze', 'halted'],
  };
  await withQueue(handlers, async (queue, db) => {
    for (const [jobType, [kind, reason]] of Object.entries(expected)) {
      const done = waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobType === jobType);
      const { rows } = await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, max_attempts) VALUES ($1, 5) RETURNING job_id`, [jobType]);
      const event = await done;
      assert.is(event.outcome.kind, kind, jobType);
      assert.is(event.outcome.kind !== 'completed' && event.outcome.reason, reason, jobType);
      const row = await jobRow(db, rows[0].job_id);
      assert.is(row.last_error_reason, reason, `${jobType}: last_error_reason`);
    }
  }, 10_000);
});

test('a handler whose SQL has a bug is retried and fails as a handler_error, not snoozed as the database being away', async () => {
  // The server answers a statement given the wrong number of parameters with SQLSTATE 08P01, in
  // the connection-exception class: taken for an outage, the job snoozed every 5 s, no attempt spent, forever.
  let db: TestDatabase | undefined;
  const handlers: BroadcastQueueOptions['handlers'] = { buggy: () => db!.pool.query('SELECT $1::int + $2::int', [1]) };
  await withQueue(handlers, async (queue, database) => {
    db = database;
    const done = waitForEvent<JobEvent>(queue, 'job:done', (e) => e.outcome.kind === 'failed', 5_000);
    const { rows } = await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, max_attempts) VALUES ('buggy', 2) RETURNING job_id`);
    const event = await done;
    assert.is(event.outcome.kind !== 'completed' && event.outcome.reason, 'handler_error');
    const row = await jobRow(db, rows[0].job_id);
    assert.equal([row.status, row.attempts, row.last_error_reason], ['failed', 2, 'handler_error']);
    assert.match(row.last_error, /bind message supplies 1 parameters/);
  }, 50);
});

test('a job that keeps failing stops at max_attempts with its history', async () => {
  await withQueue({ broken: () => { throw new Error('always broken'); } }, async (queue, db) => {
    const jobs = watchJobs(queue);
    const { rows } = await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, max_attempts) VALUES ('broken', 2) RETURNING job_id`);
    await jobs.done(rows[0].job_id, (e) => e.outcome.kind === 'failed', 5_000);
    const row = await jobRow(db, rows[0].job_id);
    assert.is(row.status, 'failed');
    assert.is(row.attempts, 2);
    assert.is(row.errors.length, 2);
    assert.match(row.last_error, /always broken \(attempt 2 of 2\)/);
    assert.ok(row.finished_at);
  }, 50);
});

test('a snooze retries later without spending an attempt', async () => {
  let calls = 0;
  await withQueue({ limited: () => { if (++calls === 1) throw new SnoozeError(150, 'rate limited'); return 'sent'; } }, async (queue, db) => {
    const jobs = watchJobs(queue);
    const { rows } = await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, max_attempts) VALUES ('limited', 1) RETURNING job_id`);
    await jobs.done(rows[0].job_id, (e) => e.outcome.kind === 'completed', 5_000);
    const row = await jobRow(db, rows[0].job_id);
    assert.is(row.status, 'completed');
    assert.is(row.attempts, 1, 'the snoozed run must not count');
    assert.is(row.errors.length, 0);
  });
});

test('a permanent error fails at once, whatever attempts remain', async () => {
  await withQueue({ doomed: () => { throw new PermanentError('chat not found'); } }, async (queue, db) => {
    const jobs = watchJobs(queue);
    const { rows } = await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, max_attempts) VALUES ('doomed', 5) RETURNING job_id`);
    await jobs.done(rows[0].job_id);
    const row = await jobRow(db, rows[0].job_id);
    assert.equal([row.status, row.attempts, row.last_error], ['failed', 1, 'chat not found']);
  });
});

test('a malformed payload fails its job with a clear message and the daemon keeps running', async () => {
  const handler = (job: { payload: Record<string, unknown> }) => {
    if (!Number.isInteger(job.payload.chat_id)) throw new PayloadError(`payload.chat_id must be an integer, got ${typeof job.payload.chat_id}`);
    return 'ok';
  };
  await withQueue({ strict: handler }, async (queue, db) => {
    const jobs = watchJobs(queue);
    const bad = await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, payload) VALUES ('strict', '{"chat_id": "abc"}') RETURNING job_id`);
    await jobs.done(bad.rows[0].job_id);
    const good = await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, payload) VALUES ('strict', '{"chat_id": 42}') RETURNING job_id`);
    await jobs.done(good.rows[0].job_id);
    const badRow = await jobRow(db, bad.rows[0].job_id);
    assert.equal([badRow.status, badRow.last_error], ['failed', 'payload.chat_id must be an integer, got string']);
    assert.is((await jobRow(db, good.rows[0].job_id)).status, 'completed');
  });
});

test('constraints refuse nonsense at INSERT time with a readable name', async () => {
  const db = await createTestDatabase();
  try {
    const attempts: [string, RegExp][] = [
      [`INSERT INTO broadcast_queue_jobs (status) VALUES ('bogus')`, /broadcast_queue_jobs_status_valid/],
      [`INSERT INTO broadcast_queue_jobs (max_attempts) VALUES (0)`, /broadcast_queue_jobs_max_attempts_between_1_and_100/],
      [`INSERT INTO broadcast_queue_jobs (max_attempts) VALUES (101)`, /broadcast_queue_jobs_max_attempts_between_1_and_100/],
      [`INSERT INTO broadcast_queue_jobs (payload) VALUES ('[1,2]')`, /broadcast_queue_jobs_payload_is_object/],
      [`INSERT INTO broadcast_queue_jobs (payload) VALUES ('"text"')`, /broadcast_queue_jobs_payload_is_object/],
      [`INSERT INTO broadcast_queue_jobs (job_type) VALUES ('  ')`, /broadcast_queue_jobs_job_type_not_blank/],
      [`INSERT INTO broadcast_queue_jobs (queue) VALUES ('')`, /broadcast_queue_jobs_queue_not_blank/],
    ];
    for (const [sql, expected] of attempts) {
      const error = await db.pool.query(sql).then(() => null, (e: Error) => e);
      assert.ok(error, `accepted: ${sql}`);
      assert.match(error!.message, expected);
    }
  } finally {
    await db.drop();
  }
});

test('job_key allows one unfinished job per key, and a finished one frees it', async () => {
  await withQueue({ noop: () => null }, async (queue, db) => {
    await queue.pause();
    const first = await queue.enqueue('noop', {}, { jobKey: 'daily-digest' });
    const second = await queue.enqueue('noop', {}, { jobKey: 'daily-digest' });
    assert.is(second.jobId, first.jobId);
    assert.ok(second.existing);
    const duplicate = await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, job_key) VALUES ('noop', 'daily-digest')`).then(() => null, (e: Error) => e);
    assert.match(duplicate!.message, /broadcast_queue_jobs_job_key_unfinished_idx/);
    const done = waitForEvent<JobEvent>(queue, 'job:done');
    queue.resume();
    await done;
    const third = await queue.enqueue('noop', {}, { jobKey: 'daily-digest' });
    assert.is.not(third.jobId, first.jobId);
    assert.not.ok(third.existing);
  });
});

test.run();
