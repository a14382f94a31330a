import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EventEmitter } from 'node:events';
import { BroadcastQueue } from '../../src/broadcast-queue.js';
import { freePort } from '../../src/db/embedded.js';
import { createLogger } from '../../src/log.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
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

// stop() used to wait for start(), whose retry loops never learnt that the daemon was closing.
async function unreachableUrl(): Promise<string> {
  return `postgres://nobody:secret@127.0.0.1:${await freePort()}/nothing`;
}

// Not a timing bound: the old code never finished at all, and this is what catches it.
function orFail<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const fail = new Promise<never>((_resolve, reject) => (timer = setTimeout(() => reject(new Error(what)), 30_000)));
  return Promise.race([promise, fail]).finally(() => clearTimeout(timer));
}

function lineLogger(events: EventEmitter) {
  const destination = { write: (line: string) => void events.emit('line', JSON.parse(line)) };
  return createLogger({ level: 'warn', destination });
}

test('stop() during a start() still retrying an unreachable LISTEN database ends it, and start() rejects', async () => {
  const db = await createTestDatabase();
  const lines = new EventEmitter();
  const queue = new BroadcastQueue({ connectionString: db.url, listenConnectionString: await unreachableUrl(), sweepMs: 3_600_000, handlers: { noop: () => null }, log: lineLogger(lines) });
  try {
    const retrying = waitForEvent(lines, 'line', (l: any) => /not acquired; retrying|could not connect; retrying/.test(l.msg));
    const started = queue.start().then(() => 'started', (error: Error) => error.message);
    await retrying;
    await orFail(queue.stop(), 'stop() did not return');
    assert.match(await started, /stopped before start-up finished/);
    const daemons = await db.pool.query('SELECT count(*)::int AS n FROM broadcast_queue_daemons');
    assert.is(daemons.rows[0].n, 0);
  } finally {
    await queue.stop();
    await db.drop();
  }
});

for (const [what, env] of [
  ['BQ_LISTEN_DATABASE_URL is unreachable', async (db: TestDatabase) => ({ DATABASE_URL: db.url, BQ_LISTEN_DATABASE_URL: await unreachableUrl() })],
  ['the database is down and --no-migrate is set', async () => ({ DATABASE_URL: await unreachableUrl() })],
] as const) {
  test(`SIGTERM ends a daemon whose start is still retrying because ${what}`, async () => {
    const db = await createTestDatabase();
    const child = startChild('daemon', { ...(await env(db)), LOG_LEVEL: 'warn', BQ_HTTP_PORT: '-1', BQ_SHUTDOWN_TIMEOUT_SECONDS: '2' }, what.includes('no-migrate') ? ['--no-migrate'] : []);
    try {
      await waitForEvent(child.events, 'line', (l: any) => /not acquired; retrying|could not connect; retrying/.test(l.msg), 30_000);
      child.process.kill('SIGTERM');
      const { code } = await orFail(child.exited, 'the daemon did not exit after SIGTERM');
      assert.is(code, 0, child.stderr());
    } finally {
      child.process.kill('SIGKILL');
      await db.drop();
    }
  });
}

test.run();
