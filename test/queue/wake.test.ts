import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { BroadcastQueue } from '../../src/broadcast-queue.js';
import type { Job } from '../../src/queue/claimer.js';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import { createTestDatabase } from '../helpers/db.js';
import { waitForEvent } from '../helpers/wait.js';

const HOUR_MS = 3_600_000;

test('an idle daemon with an hour-long sweep picks up a plain SQL INSERT at once', async () => {
  const db = await createTestDatabase();
  const queue = new BroadcastQueue({ connectionString: db.url, sweepMs: HOUR_MS, handlers: { noop: () => 'done' } });
  try {
    await queue.start();
    // The start-up claim has run and found nothing; from here only a notification can wake it.
    const started = waitForEvent<Job>(queue, 'job:start', undefined, 5_000);
    // Listened for before the INSERT: the job can finish before the INSERT's reply is read.
    const done = waitForEvent(queue, 'job:done');
    const inserted = await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type) VALUES ('noop') RETURNING job_id`);
    const job = await started;
    assert.is(job.jobId, inserted.rows[0].job_id);
    await done;
    const row = (await db.pool.query('SELECT status, attempts, result FROM broadcast_queue_jobs WHERE job_id = $1', [job.jobId])).rows[0];
    assert.equal(row, { status: 'completed', attempts: 1, result: 'done' });
  } finally {
    await queue.stop();
    await db.drop();
  }
});

test('a claim that fails while the listener stays connected is retried, not left for the sweep', async () => {
  const db = await createTestDatabase();
  const queue = new BroadcastQueue({ connectionString: db.url, sweepMs: HOUR_MS, handlers: { noop: () => 'done' } });
  try {
    await queue.start();
    const failed = waitForEvent(queue, 'claim:failed', undefined, 15_000);
    const done = waitForEvent<JobEvent>(queue, 'job:done', undefined, 30_000);
    // The notification arrives at commit, when the table the claim reads is no longer there by
    // its name: the claim it wakes fails, and the listener stays connected throughout.
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      // Left to the claim: handed to the idle daemon by the insert, the job would need none.
      await client.query('SET LOCAL broadcast_queue.hand_over = off');
      await client.query(`INSERT INTO broadcast_queue_jobs (job_type) VALUES ('noop')`);
      await client.query('ALTER TABLE broadcast_queue_jobs RENAME TO broadcast_queue_jobs_away');
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    await failed;
    // Back under its name with no notification: only a retried claim (or the hour's sweep) finds the job.
    await db.pool.query('ALTER TABLE broadcast_queue_jobs_away RENAME TO broadcast_queue_jobs');
    assert.is((await done).outcome.kind, 'completed');
  } finally {
    await queue.stop();
    await db.drop();
  }
});

test('a 10k-row INSERT in one statement sends one notification', async () => {
  const db = await createTestDatabase();
  const listener = new pg.Client({ connectionString: db.url });
  try {
    await listener.connect();
    await listener.query('LISTEN broadcast_queue');
    const payloads: string[] = [];
    listener.on('notification', (n) => payloads.push(n.payload ?? ''));
    await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, payload) SELECT 'noop', jsonb_build_object('n', g) FROM generate_series(1, 10000) g`);
    // Notifications arrive in commit order, so once the marker's arrives the count is final.
    const marker = waitForEvent<pg.Notification>(listener, 'notification', (n) => n.payload === 'marker');
    await db.pool.query(`INSERT INTO broadcast_queue_jobs (queue, job_type) VALUES ('marker', 'noop')`);
    await marker;
    assert.equal(payloads, ['broadcasts', 'marker']);
  } finally {
    await listener.end();
    await db.drop();
  }
});

test('an UPDATE making 10k jobs due again (a bulk retry) also sends one notification; claims send none', async () => {
  const db = await createTestDatabase();
  const listener = new pg.Client({ connectionString: db.url });
  try {
    await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, status, finished_at) SELECT 'noop', 'failed', now() FROM generate_series(1, 10000)`);
    await listener.connect();
    await listener.query('LISTEN broadcast_queue');
    const payloads: string[] = [];
    listener.on('notification', (n) => payloads.push(n.payload ?? ''));
    await db.pool.query(`UPDATE broadcast_queue_jobs SET status = 'processing', locked_by = 'x' WHERE job_id <= 10`);
    await db.pool.query(`UPDATE broadcast_queue_jobs SET status = 'pending', locked_by = NULL, run_at = now() WHERE status = 'failed'`);
    const marker = waitForEvent<pg.Notification>(listener, 'notification', (n) => n.payload === 'marker');
    await db.pool.query(`INSERT INTO broadcast_queue_jobs (queue, job_type) VALUES ('marker', 'noop')`);
    await marker;
    assert.equal(payloads, ['broadcasts', 'marker']);
  } finally {
    await listener.end();
    await db.drop();
  }
});

test('a job with a future run_at starts when due, woken by its timer', async () => {
  const db = await createTestDatabase();
  const queue = new BroadcastQueue({ connectionString: db.url, sweepMs: HOUR_MS, handlers: { noop: () => null } });
  try {
    await queue.start();
    const started = waitForEvent<Job>(queue, 'job:start', undefined, 5_000);
    const { rows } = await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, run_at) VALUES ('noop', now() + interval '300 milliseconds') RETURNING run_at`);
    const job = await started;
    const startedAt = (await db.pool.query('SELECT started_at FROM broadcast_queue_jobs WHERE job_id = $1', [job.jobId])).rows[0].started_at;
    assert.ok(startedAt >= rows[0].run_at, 'started before its run_at');
  } finally {
    await queue.stop();
    await db.drop();
  }
});

test('higher priority runs first', async () => {
  const db = await createTestDatabase();
  const order: number[] = [];
  const queue = new BroadcastQueue({ connectionString: db.url, concurrency: 1, sweepMs: HOUR_MS, handlers: { noop: (job) => order.push(job.payload.p as number) } });
  try {
    await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, priority, payload) VALUES ('noop', 0, '{"p":0}'), ('noop', 10, '{"p":10}'), ('noop', 5, '{"p":5}')`);
    const done = new Promise((resolve) => queue.on('job:done', () => order.length === 3 && resolve(null)));
    await queue.start();
    await done;
    assert.equal(order, [10, 5, 0]);
  } finally {
    await queue.stop();
    await db.drop();
  }
});

test('a daemon claims only the job types it has handlers for, and getStatus reports the rest', async () => {
  const db = await createTestDatabase();
  const queue = new BroadcastQueue({ connectionString: db.url, sweepMs: HOUR_MS, handlers: { noop: () => null } });
  try {
    await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type) VALUES ('mystery'), ('noop')`);
    const done = waitForEvent(queue, 'job:done');
    await queue.start();
    await done;
    const status = await queue.getStatus();
    assert.equal(status.unrunnable, [{ queue: 'broadcasts', jobType: 'mystery', count: 1 }]);
    assert.is(status.queues.broadcasts!.pending, 1);
    assert.is(status.queues.broadcasts!.completed, 1);
    assert.is(status.daemons.length, 1);
    assert.ok(status.listenerConnected);
  } finally {
    await queue.stop();
    await db.drop();
  }
});

test.run();
