// The daemon's side of the insert trigger's hand-over (sql/0025_idle_slots.sql): a job handed to an
// idle daemon starts once however its notification fares, and no insert fails because of it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { BroadcastQueue } from '../../src/broadcast-queue.js';
import type { Job } from '../../src/queue/claimer.js';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { untilOffering } from '../helpers/idle-daemon.js';
import { until, waitForEvent } from '../helpers/wait.js';

const HOUR_MS = 3_600_000;

interface Harness {
  db: TestDatabase;
  queue: BroadcastQueue;
  /** Assignment notifications kept from the daemon while `holding` is true. */
  held: string[];
  holding: boolean;
  /** Delivers a kept notification as if it arrived now. */
  deliver(payload: string): void;
}

async function idleDaemon(): Promise<Harness> {
  const db = await createTestDatabase();
  const queue = new BroadcastQueue({ connectionString: db.url, concurrency: 2, sweepMs: HOUR_MS, rescueAfterMs: 3 * HOUR_MS, handlers: { noop: () => 'ran' } });
  await queue.start();
  const listener = (queue as unknown as { parts: { listener: { emit(name: string, ...args: unknown[]): boolean } } }).parts.listener;
  const emit = listener.emit.bind(listener);
  const harness: Harness = {
    db, queue, held: [], holding: false,
    deliver: (payload) => void emit('assigned', payload),
  };
  listener.emit = (name: string, ...args: unknown[]) => {
    if (name === 'assigned' && harness.holding) {
      harness.held.push(args[0] as string);
      return true;
    }
    return emit(name, ...args);
  };
  await untilOffering(queue, db, 2);
  return harness;
}

async function handOverUnheard(h: Harness): Promise<number> {
  h.holding = true;
  const { rows } = await h.db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type) VALUES ('noop') RETURNING job_id`);
  const jobId = rows[0].job_id as number;
  const row = (await h.db.pool.query('SELECT status, locked_by FROM broadcast_queue_jobs WHERE job_id = $1', [jobId])).rows[0];
  assert.equal(row, { status: 'processing', locked_by: h.queue.daemonId }, 'the insert handed the job over');
  return jobId;
}

async function reconnectListener(h: Harness): Promise<void> {
  const reconnected = waitForEvent(h.queue, 'listener:connected', undefined, 30_000);
  await h.db.pool.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'broadcast-queued listener'`);
  await reconnected;
}

test('a job handed over while its notification was lost runs once the listener is back', async () => {
  const h = await idleDaemon();
  try {
    const jobId = await handOverUnheard(h);
    const done = waitForEvent<JobEvent>(h.queue, 'job:done', (e) => e.job.jobId === jobId, 30_000);
    await reconnectListener(h);
    assert.is((await done).outcome.kind, 'completed');
    const row = (await h.db.pool.query('SELECT status, attempts FROM broadcast_queue_jobs WHERE job_id = $1', [jobId])).rows[0];
    assert.equal(row, { status: 'completed', attempts: 1 });
  } finally {
    await h.queue.stop();
    await h.db.drop();
  }
});

test('a notification that arrives after its job was taken back starts nothing', async () => {
  const h = await idleDaemon();
  try {
    const jobId = await handOverUnheard(h);
    let starts = 0;
    h.queue.on('job:start', (job: Job) => job.jobId === jobId && starts++);
    const done = waitForEvent<JobEvent>(h.queue, 'job:done', (e) => e.job.jobId === jobId, 30_000);
    await reconnectListener(h);
    await done;
    assert.is(h.held.length, 1);
    h.holding = false;
    // Delivered late: the daemon reacts to it synchronously, so a second start would show now.
    h.deliver(h.held[0]!);
    assert.is(starts, 1);
  } finally {
    await h.queue.stop();
    await h.db.drop();
  }
});

// NOTIFY needs no privilege: any role that can connect could otherwise make the daemon run a job
// of its choosing (a send job: any message to any chat) by naming it in a notification.
test('a notification the insert trigger did not send starts nothing, and the daemon goes on', async () => {
  const h = await idleDaemon();
  try {
    let starts = 0;
    h.queue.on('job:start', () => starts++);
    const job = [1, 'broadcasts', 'noop', {}, 1, 3, Date.now(), 0, null, Date.now()];
    const forged = { daemon: h.queue.daemonId, claimedAt: '2026-01-01T00:00:00.000000Z', jobs: [job] };
    h.deliver(JSON.stringify(forged));
    h.deliver(JSON.stringify({ ...forged, token: 'guessed' }));
    h.deliver('not json at all');
    h.deliver('null');
    assert.is(starts, 0);
    // Sent by NOTIFY itself, through the listener, as an attacker would.
    await h.db.pool.query(`SELECT pg_notify('broadcast_queue_assigned', $1)`, [JSON.stringify(forged)]);
    const done = new Map<number, JobEvent>();
    h.queue.on('job:done', (event: JobEvent) => done.set(event.job.jobId, event));
    const { rows } = await h.db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type) VALUES ('noop') RETURNING job_id`);
    await until(async () => done.has(rows[0].job_id), 30_000, 'the real job done');
    assert.is(starts, 1, 'only the job really inserted started');
  } finally {
    await h.queue.stop();
    await h.db.drop();
  }
});

// A send handed over in the moment after its daemon was killed would be rescued as an attempt that
// may have sent, and fail as outcome unknown though nothing was (chaos --seed 5704).
test('send jobs are not offered: they are left to the claim', async () => {
  const db = await createTestDatabase();
  const queue = new BroadcastQueue({ connectionString: db.url, concurrency: 2, sweepMs: HOUR_MS, handlers: { noop: () => null, send: () => null } });
  try {
    await queue.start();
    await untilOffering(queue, db, 2);
    const { rows } = await db.pool.query('SELECT job_types FROM broadcast_queue_idle_slots WHERE daemon_id = $1', [queue.daemonId]);
    assert.equal(rows[0].job_types, ['noop']);
  } finally {
    await queue.stop();
    await db.drop();
  }
});

test('no insert fails for the notification: a job too large for one is claimed, the small ones beside it handed over', async () => {
  const h = await idleDaemon();
  try {
    // Incompressible, and a payload PostgreSQL stores compressed to a fraction of its text.
    const large = { blob: randomBytes(4_000).toString('hex') };
    const compressible = { blob: 'x'.repeat(200_000) };
    // Listening before the insert: a job handed over may finish before the INSERT's answer is read.
    const finished = new Map<number, JobEvent>();
    h.queue.on('job:done', (event: JobEvent) => finished.set(event.job.jobId, event));
    const { rows } = await h.db.pool.query(
      `INSERT INTO broadcast_queue_jobs (job_type, payload, priority) VALUES ('noop', $1, 9), ('noop', '{}', 0), ('noop', $2, 9) RETURNING job_id`,
      [JSON.stringify(large), JSON.stringify(compressible)],
    );
    const ids = rows.map((r) => r.job_id as number);
    await until(async () => ids.every((id) => finished.has(id)), 30_000, 'all three jobs done');
    for (const id of ids) assert.is(finished.get(id)!.outcome.kind, 'completed');
    const payloads = (await h.db.pool.query(`SELECT length(payload->>'blob') AS n FROM broadcast_queue_jobs WHERE payload ? 'blob' ORDER BY job_id`)).rows.map((r) => r.n);
    assert.equal(payloads, [8_000, 200_000]);
  } finally {
    await h.queue.stop();
    await h.db.drop();
  }
});

test.run();
