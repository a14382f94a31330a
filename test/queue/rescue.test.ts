import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BroadcastQueue } from '../../src/broadcast-queue.js';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import { createTestDatabase } from '../helpers/db.js';
import { startChild } from '../helpers/child.js';
import { waitForEvent } from '../helpers/wait.js';

// A short sweep keeps the test quick; with the default 30 s sweep a kill -9 costs at most 30 s.
const FAST = { BQ_SWEEP_SECONDS: '0.2', BQ_RESCUE_AFTER_SECONDS: '1' };

test('kill -9 of a daemon holding a job: the job runs again elsewhere, with its attempt recorded', async () => {
  const db = await createTestDatabase();
  const child = startChild('fixtures/worker.js', { DATABASE_URL: db.url, ...FAST, LOG_LEVEL: 'warn' });
  const survivor = new BroadcastQueue({ connectionString: db.url, sweepMs: 200, rescueAfterMs: 1000, handlers: { hang: () => 'finished by the survivor' } });
  try {
    await waitForEvent(child.events, 'line', (l: any) => l.event === 'ready');
    const started = waitForEvent(child.events, 'line', (l: any) => l.event === 'start');
    const { rows } = await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type) VALUES ('hang') RETURNING job_id`);
    await started;
    // Only now does the survivor start, so the child surely holds the job.
    await survivor.start();
    const killedAt = Date.now();
    child.process.kill('SIGKILL');
    const done = await waitForEvent<JobEvent>(survivor, 'job:done', (e) => e.job.jobId === rows[0].job_id, 30_000);
    const waitedMs = Date.now() - killedAt;
    assert.is(done.outcome.kind, 'completed');
    assert.is(done.job.attempt, 2);
    const row = (await db.pool.query('SELECT status, attempts, errors FROM broadcast_queue_jobs WHERE job_id = $1', [rows[0].job_id])).rows[0];
    assert.is(row.status, 'completed');
    assert.is(row.attempts, 2);
    assert.is(row.errors.length, 1);
    assert.ok(row.errors[0].rescued);
    assert.is(row.errors[0].attempt, 1);
    assert.ok(waitedMs < 30_000, `rescue took ${waitedMs} ms`);
  } finally {
    child.process.kill('SIGKILL');
    await child.exited;
    await survivor.stop();
    await db.drop();
  }
});

test('a stale worker cannot overwrite a job that was rescued and claimed again', async () => {
  const db = await createTestDatabase();
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const stale = new BroadcastQueue({ connectionString: db.url, sweepMs: 100_000, rescueAfterMs: 300_000, handlers: { work: async () => { await gate; return 'stale'; } } });
  try {
    await stale.start();
    const started = waitForEvent(stale, 'job:start');
    const { rows } = await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type) VALUES ('work') RETURNING job_id`);
    await started;
    // Another daemon decides the holder is dead and re-runs the job to completion.
    await db.pool.query(`UPDATE broadcast_queue_jobs SET status = 'completed', locked_by = NULL, result = '"fresh"', attempts = 2 WHERE job_id = $1`, [rows[0].job_id]);
    const done = waitForEvent<JobEvent>(stale, 'job:done');
    release();
    const event = await done;
    assert.is(event.recorded, false);
    const row = (await db.pool.query('SELECT status, result FROM broadcast_queue_jobs WHERE job_id = $1', [rows[0].job_id])).rows[0];
    assert.equal(row, { status: 'completed', result: 'fresh' });
  } finally {
    await stale.stop();
    await db.drop();
  }
});

test('a job that kills its daemon every time fails once its attempts are spent', async () => {
  const db = await createTestDatabase();
  const rescuer = new BroadcastQueue({ connectionString: db.url, sweepMs: 200, rescueAfterMs: 1000, handlers: {} });
  try {
    // A daemon that vanished while holding the job on its last attempt.
    await db.pool.query(`INSERT INTO broadcast_queue_daemons (daemon_id, lock_key, hostname, pid, queues, job_types, concurrency, version) VALUES ('gone', 1, 'h', 1, '{broadcasts}', '{poison}', 1, 'x')`);
    const { rows } = await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, status, locked_by, attempts, max_attempts) VALUES ('poison', 'processing', 'gone', 3, 3) RETURNING job_id`);
    await rescuer.start();
    await rescuer.rescueNow();
    const row = (await db.pool.query('SELECT status, last_error FROM broadcast_queue_jobs WHERE job_id = $1', [rows[0].job_id])).rows[0];
    assert.is(row.status, 'failed');
    assert.match(row.last_error, /daemon gone died during attempt 3/);
  } finally {
    await rescuer.stop();
    await db.drop();
  }
});

test.run();
