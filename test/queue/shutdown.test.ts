import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BroadcastQueue } from '../../src/broadcast-queue.js';
import { createTestDatabase } from '../helpers/db.js';
import { startChild } from '../helpers/child.js';
import { waitForEvent } from '../helpers/wait.js';

test('stop() lets a running job finish and records it', async () => {
  const db = await createTestDatabase();
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const queue = new BroadcastQueue({ connectionString: db.url, shutdownTimeoutMs: 10_000, handlers: { slow: async () => { await gate; return 'finished'; } } });
  try {
    await queue.start();
    const started = waitForEvent(queue, 'job:start');
    const { rows } = await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type) VALUES ('slow') RETURNING job_id`);
    await started;
    const stopping = queue.stop();
    // The job is still running after stop() began; let it finish now.
    release();
    await stopping;
    const row = (await db.pool.query('SELECT status, result, locked_by FROM broadcast_queue_jobs WHERE job_id = $1', [rows[0].job_id])).rows[0];
    assert.equal(row, { status: 'completed', result: 'finished', locked_by: null });
    const daemons = await db.pool.query('SELECT count(*)::int AS n FROM broadcast_queue_daemons');
    assert.is(daemons.rows[0].n, 0, 'a stopped daemon deregisters');
  } finally {
    await queue.stop();
    await db.drop();
  }
});

test('past the shutdown timeout a job is aborted and handed back with its attempt refunded', async () => {
  const db = await createTestDatabase();
  const queue = new BroadcastQueue({
    connectionString: db.url,
    shutdownTimeoutMs: 100,
    handlers: { hang: (_job, { signal }) => new Promise((_r, reject) => signal.addEventListener('abort', () => reject(signal.reason))) },
  });
  try {
    await queue.start();
    const started = waitForEvent(queue, 'job:start');
    const { rows } = await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type) VALUES ('hang') RETURNING job_id`);
    await started;
    await queue.stop();
    const row = (await db.pool.query('SELECT status, attempts, locked_by, last_error, run_at <= now() AS due FROM broadcast_queue_jobs WHERE job_id = $1', [rows[0].job_id])).rows[0];
    assert.equal(row, { status: 'pending', attempts: 0, locked_by: null, last_error: 'interrupted: daemon shutting down', due: true });
  } finally {
    await queue.stop();
    await db.drop();
  }
});

test('SIGTERM finishes the job in flight, then the process exits 0', async () => {
  const db = await createTestDatabase();
  const child = startChild('fixtures/worker.js', { DATABASE_URL: db.url, LOG_LEVEL: 'warn', BQ_SHUTDOWN_TIMEOUT_SECONDS: '20' });
  try {
    await waitForEvent(child.events, 'line', (l: any) => l.event === 'ready');
    const started = waitForEvent(child.events, 'line', (l: any) => l.event === 'start');
    const { rows } = await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, payload) VALUES ('slow', '{"ms": 500}') RETURNING job_id`);
    await started;
    child.process.kill('SIGTERM');
    const { code } = await child.exited;
    assert.is(code, 0, child.stderr());
    const row = (await db.pool.query('SELECT status, result FROM broadcast_queue_jobs WHERE job_id = $1', [rows[0].job_id])).rows[0];
    assert.equal(row, { status: 'completed', result: { sleptMs: 500 } });
  } finally {
    child.process.kill('SIGKILL');
    await db.drop();
  }
});

test.run();
