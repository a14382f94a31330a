import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { BroadcastQueue } from '../../src/broadcast-queue.js';
import { inTransaction } from '../../src/db/transaction.js';
import type { Job } from '../../src/queue/claimer.js';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import { LOCK_NAMESPACE } from '../../src/queue/daemon-lock.js';
import { createTestDatabase, queryWithoutHandOver, type TestDatabase } from '../helpers/db.js';
import { until, waitForEvent } from '../helpers/wait.js';

const HOUR_MS = 3_600_000;

/** A daemon row, its liveness lock held on a client of its own (unless `alive` is false), and an advertisement. */
async function advertisedDaemon(db: TestDatabase, daemonId: string, free: number, options: { alive?: boolean; queues?: string[]; jobTypes?: string[] } = {}): Promise<pg.Client> {
  const lockKey = 1000 + Math.floor(Math.random() * 1_000_000);
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  if (options.alive !== false) await client.query('SELECT pg_advisory_lock($1, $2)', [LOCK_NAMESPACE, lockKey]);
  await db.pool.query(
    `INSERT INTO broadcast_queue_daemons (daemon_id, lock_key, hostname, pid, queues, job_types, concurrency, version)
     VALUES ($1, $2, 'test', 1, $3, $4, $5, 'test')`,
    [daemonId, lockKey, options.queues ?? ['broadcasts'], options.jobTypes ?? ['noop'], free],
  );
  await db.pool.query(`INSERT INTO broadcast_queue_idle_slots (daemon_id, lock_key, queues, job_types, free, token) VALUES ($1, $2, $3, $4, $5, 'token-' || $1)`, [daemonId, lockKey, options.queues ?? ['broadcasts'], options.jobTypes ?? ['noop'], free]);
  return client;
}

test('the insert trigger hands due jobs to an advertised slot, claimed as a claim claims them, and says so in one notification', async () => {
  const db = await createTestDatabase();
  const lock = await advertisedDaemon(db, 'idle-a', 2);
  const listener = new pg.Client({ connectionString: db.url });
  try {
    await listener.connect();
    await listener.query('LISTEN broadcast_queue_assigned');
    const notified = new Promise<pg.Notification>((resolve) => listener.once('notification', resolve));
    const { rows } = await db.pool.query(
      `INSERT INTO broadcast_queue_jobs (job_type, priority, payload) VALUES ('noop', 0, '{"n":1}'), ('noop', 5, '{"n":2}'), ('noop', 0, '{"n":3}'), ('other', 9, '{}') RETURNING job_id`,
    );
    const ids = rows.map((r) => Number(r.job_id));
    const jobs = (await db.pool.query('SELECT job_id, status, attempts, locked_by, started_at IS NOT NULL AS started FROM broadcast_queue_jobs ORDER BY job_id')).rows;
    // The two best by claim order (priority, then age); the third waits, the other type is not this daemon's.
    assert.equal(jobs.map((j) => [j.status, j.attempts, j.locked_by, j.started]), [
      ['processing', 1, 'idle-a', true], ['processing', 1, 'idle-a', true], ['pending', 0, null, false], ['pending', 0, null, false],
    ]);
    const message = JSON.parse((await notified).payload!);
    assert.is(message.daemon, 'idle-a');
    assert.is(message.token, 'token-idle-a', 'the offer\'s token, without which the daemon runs nothing');
    assert.equal(message.jobs.map((j: unknown[]) => j[0]), [ids[1], ids[0]]);
    // The claim as CLAIM_SQL words it, so that the daemon knows a run however it came.
    assert.match(message.claimedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    const same = await db.pool.query(`SELECT bool_and(started_at = $1::timestamptz) AS ok FROM broadcast_queue_jobs WHERE status = 'processing'`, [message.claimedAt]);
    assert.ok(same.rows[0].ok, 'claimedAt is the handed jobs\' started_at');
    // Every slot used: the advertisement is gone.
    assert.is((await db.pool.query('SELECT count(*)::int AS n FROM broadcast_queue_idle_slots')).rows[0].n, 0);
    // Nor is it left for the rest of the producer's transaction to read.
    await db.pool.query(`INSERT INTO broadcast_queue_idle_slots (daemon_id, lock_key, queues, job_types, free, token)
                         SELECT daemon_id, lock_key, queues, job_types, 1, 'token-idle-a' FROM broadcast_queue_daemons WHERE daemon_id = 'idle-a'`);
    const left = await inTransaction(db.pool, async (client) => {
      await client.query(`INSERT INTO broadcast_queue_jobs (job_type) VALUES ('noop')`);
      return (await client.query(`SELECT current_setting('broadcast_queue.offer_token', true) AS token`)).rows[0].token;
    });
    assert.is((await db.pool.query(`SELECT count(*)::int AS n FROM broadcast_queue_jobs WHERE status = 'processing'`)).rows[0].n, 3, 'the third insert was handed over too');
    assert.ok(!left, `the token stayed readable: ${left}`);
  } finally {
    await listener.end();
    await lock.end();
    await db.drop();
  }
});

test('an advertisement of a daemon without its liveness lock hands over nothing and is removed', async () => {
  const db = await createTestDatabase();
  const client = await advertisedDaemon(db, 'dead-a', 3, { alive: false });
  try {
    await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type) VALUES ('noop')`);
    assert.is((await db.pool.query('SELECT status FROM broadcast_queue_jobs')).rows[0].status, 'pending');
    assert.is((await db.pool.query('SELECT count(*)::int AS n FROM broadcast_queue_idle_slots')).rows[0].n, 0);
  } finally {
    await client.end();
    await db.drop();
  }
});

test('a session that opts out of the hand-over leaves its jobs pending for the claim', async () => {
  const db = await createTestDatabase();
  const lock = await advertisedDaemon(db, 'idle-c', 2);
  try {
    await queryWithoutHandOver(db, `INSERT INTO broadcast_queue_jobs (job_type) VALUES ('noop')`);
    assert.is((await db.pool.query('SELECT status FROM broadcast_queue_jobs')).rows[0].status, 'pending');
    assert.is((await db.pool.query('SELECT free FROM broadcast_queue_idle_slots')).rows[0].free, 2);
  } finally {
    await lock.end();
    await db.drop();
  }
});

// The row trigger runs before the CHECK constraints: counting the claim's attempt on a row inserted
// with attempts -1 made it 0, and the bad row was stored and run (found by the chaos suite).
test('a row the table refuses is refused with an offer too, not handed over', async () => {
  const db = await createTestDatabase();
  const lock = await advertisedDaemon(db, 'idle-d', 2);
  try {
    const refused = await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, attempts) VALUES ('noop', -1)`).then(() => null, (error: Error) => error.message);
    assert.match(refused ?? 'inserted', /broadcast_queue_jobs_attempts_not_negative/);
    // A row with attempts already counted is left to the claim.
    await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, attempts) VALUES ('noop', 1)`);
    assert.equal((await db.pool.query('SELECT status, attempts FROM broadcast_queue_jobs')).rows, [{ status: 'pending', attempts: 1 }]);
    assert.is((await db.pool.query('SELECT free FROM broadcast_queue_idle_slots')).rows[0].free, 2);
  } finally {
    await lock.end();
    await db.drop();
  }
});

test('future, dependent and other-queue jobs are not handed over; a bulk load hands over only the free slots', async () => {
  const db = await createTestDatabase();
  const lock = await advertisedDaemon(db, 'idle-b', 3);
  try {
    const first = (await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, run_at) VALUES ('noop', now() + interval '1 hour') RETURNING job_id`)).rows[0].job_id;
    await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, queue) VALUES ('noop', 'elsewhere')`);
    await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, depends_on) VALUES ('noop', ARRAY[$1::bigint])`, [first]);
    assert.is((await db.pool.query(`SELECT count(*)::int AS n FROM broadcast_queue_jobs WHERE status = 'processing'`)).rows[0].n, 0);
    await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type) SELECT 'noop' FROM generate_series(1, 10000)`);
    // The first three, in the order inserted; the offer is used up and gone.
    const handed = (await db.pool.query(`SELECT job_id FROM broadcast_queue_jobs WHERE status = 'processing' ORDER BY job_id`)).rows.map((r) => Number(r.job_id));
    const firstOfLoad = Number((await db.pool.query(`SELECT min(job_id) AS id FROM broadcast_queue_jobs WHERE job_type = 'noop' AND queue = 'broadcasts' AND depends_on IS NULL AND run_at <= now()`)).rows[0].id);
    assert.equal(handed, [firstOfLoad, firstOfLoad + 1, firstOfLoad + 2]);
    assert.is((await db.pool.query('SELECT count(*)::int AS n FROM broadcast_queue_idle_slots')).rows[0].n, 0);
    assert.is((await db.pool.query(`SELECT count(*)::int AS n FROM broadcast_queue_jobs WHERE status = 'pending'`)).rows[0].n, 10000 - 3 + 2);
  } finally {
    await lock.end();
    await db.drop();
  }
});

test('an idle daemon runs a job the trigger handed it, and withdraws its advertisement when it stops', async () => {
  const db = await createTestDatabase();
  const queue = new BroadcastQueue({ connectionString: db.url, sweepMs: HOUR_MS, concurrency: 2, handlers: { noop: () => 'done' } });
  try {
    await queue.start();
    await until(async () => (await db.pool.query('SELECT free FROM broadcast_queue_idle_slots')).rows[0]?.free === 2, 10_000, 'an advertisement');
    const started = waitForEvent<Job>(queue, 'job:start');
    const done = waitForEvent<JobEvent>(queue, 'job:done');
    const inserted = await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type) VALUES ('noop') RETURNING job_id, status, locked_by`);
    // Stored claimed by the insert itself: no claim of the daemon's stood between.
    assert.equal([inserted.rows[0].status, inserted.rows[0].locked_by], ['processing', queue.daemonId]);
    assert.is((await started).jobId, inserted.rows[0].job_id);
    assert.is((await done).outcome.kind, 'completed');
    const row = (await db.pool.query('SELECT status, attempts, result FROM broadcast_queue_jobs')).rows[0];
    assert.equal(row, { status: 'completed', attempts: 1, result: 'done' });
  } finally {
    await queue.stop();
    assert.is((await db.pool.query('SELECT count(*)::int AS n FROM broadcast_queue_idle_slots')).rows[0].n, 0);
    await db.drop();
  }
});

test.run();
