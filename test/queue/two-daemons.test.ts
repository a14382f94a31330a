import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BroadcastQueue } from '../../src/broadcast-queue.js';
import { createTestDatabase, queryWithoutHandOver } from '../helpers/db.js';

test('two daemons and 10k jobs: every job runs exactly once', async () => {
  const db = await createTestDatabase();
  const runs = new Map<number, number>();
  const perDaemon = [0, 0];
  const TOTAL = 10_000;
  let finished = 0;
  let allDone!: () => void;
  const done = new Promise<void>((resolve) => (allDone = resolve));
  const make = (index: number) => {
    const queue = new BroadcastQueue({
      connectionString: db.url,
      concurrency: 8,
      handlers: {
        count: (job) => {
          runs.set(job.jobId, (runs.get(job.jobId) ?? 0) + 1);
          perDaemon[index]!++;
        },
      },
    });
    queue.on('job:done', () => {
      if (++finished === TOTAL) allDone();
    });
    return queue;
  };
  const daemons = [make(0), make(1)];
  try {
    await Promise.all(daemons.map((d) => d.start()));
    await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type) SELECT 'count' FROM generate_series(1, ${TOTAL})`);
    await done;
    assert.is(runs.size, TOTAL);
    assert.ok([...runs.values()].every((n) => n === 1), 'some job ran twice');
    assert.ok(perDaemon[0]! > 0 && perDaemon[1]! > 0, `one daemon did all the work: ${perDaemon}`);
    const { rows } = await db.pool.query(`SELECT status, count(*)::int AS n, max(attempts) AS max_attempts FROM broadcast_queue_jobs GROUP BY status`);
    assert.equal(rows, [{ status: 'completed', n: TOTAL, max_attempts: 1 }]);
  } finally {
    await Promise.all(daemons.map((d) => d.stop()));
    await db.drop();
  }
});

test('prefetched jobs that find no free slot are handed back for another daemon', async () => {
  const db = await createTestDatabase();
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  // One slot, held by a job that waits on the gate; the prefetch holds the rest for a second.
  const hoarder = new BroadcastQueue({ connectionString: db.url, concurrency: 1, prefetch: 10, handlers: { work: async (job) => (job.payload.first ? gate : null) } });
  const helper = new BroadcastQueue({ connectionString: db.url, concurrency: 4, handlers: { work: () => 'helped' } });
  try {
    await hoarder.start();
    let hoarderStarts = 0;
    const firstStarted = new Promise((resolve) => hoarder.on('job:start', () => ++hoarderStarts && resolve(null)));
    // One claim takes all six: the first runs, five wait in the prefetch buffer.
    // Claimed, not handed over by the insert (which would give the idle hoarder only its one slot).
    await queryWithoutHandOver(db, `INSERT INTO broadcast_queue_jobs (job_type, payload, priority) SELECT 'work', CASE WHEN g = 1 THEN '{"first": true}'::jsonb ELSE '{}' END, CASE WHEN g = 1 THEN 10 ELSE 0 END FROM generate_series(1, 6) g`);
    await firstStarted;
    const buffered = await db.pool.query(`SELECT count(*)::int AS n FROM broadcast_queue_jobs WHERE status = 'processing'`);
    assert.is(buffered.rows[0].n, 6, 'the hoarder holds all six');
    let helped = 0;
    const allHelped = new Promise<void>((resolve) => helper.on('job:done', () => ++helped === 5 && resolve()));
    await helper.start();
    await allHelped;
    release();
    const rows = (await db.pool.query(`SELECT status, attempts FROM broadcast_queue_jobs WHERE NOT (payload ? 'first')`)).rows;
    assert.ok(rows.every((r) => r.status === 'completed' && r.attempts === 1), JSON.stringify(rows));
    assert.is(hoarderStarts, 1, 'the hoarder started only the job it had a slot for');
  } finally {
    release();
    await Promise.all([hoarder.stop(), helper.stop()]);
    await db.drop();
  }
});

test.run();
