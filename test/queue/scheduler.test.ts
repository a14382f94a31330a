import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BroadcastQueue } from '../../src/broadcast-queue.js';
import { Claimer, type Job } from '../../src/queue/claimer.js';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import { createTestDatabase, queryWithoutHandOver } from '../helpers/db.js';
import { collectEvents, until } from '../helpers/wait.js';

const HOUR_MS = 3_600_000;

// Four jobs due within a few ms of each other; the first is due at once, the other three a
// moment later. The claim takes the first; by the time the scheduler asks for its next wake the
// other three are due too. With `run_at > now()` they were in neither the claim nor the next
// wake, and waited for the sweep (an hour here, so only that bug can make them wait).
test('jobs that become due between a claim and the next-wake query start without the sweep', async () => {
  const db = await createTestDatabase();
  const claim = Claimer.prototype.claim;
  const nextRun = Claimer.prototype.nextRunDelayMs;
  let firstClaimed = false;
  let waited = false;
  Claimer.prototype.claim = async function (this: Claimer, limit: number) {
    const jobs = await claim.call(this, limit);
    if (jobs.some((j) => j.jobType === 'first')) firstClaimed = true;
    return jobs;
  };
  Claimer.prototype.nextRunDelayMs = async function (this: Claimer) {
    if (firstClaimed && !waited) {
      waited = true;
      // Wait (on the database's clock) until the later jobs are due: a busy machine's pause.
      await db.pool.query(`SELECT pg_sleep(greatest(0, extract(epoch FROM (SELECT max(run_at) FROM broadcast_queue_jobs) - clock_timestamp())) + 0.01)`);
    }
    return nextRun.call(this);
  };
  const queue = new BroadcastQueue({ connectionString: db.url, concurrency: 4, sweepMs: HOUR_MS, rescueAfterMs: 3 * HOUR_MS, handlers: { first: () => null, later: () => null } });
  try {
    await queue.start();
    // Let the start-up and listener-connected claims finish first: a wake arriving during one of
    // them makes the scheduler claim again afterwards, which would hide the bug.
    const scheduler = (queue as unknown as { parts: { scheduler: { claims: Set<unknown> } } }).parts.scheduler;
    await until(async () => scheduler.claims.size === 0);
    const started = collectEvents<Job>(queue, 'job:start', 4, undefined, 15_000);
    // Claimed, not handed to the idle daemon by the insert: the race is the claim's.
    await queryWithoutHandOver(db, `
      INSERT INTO broadcast_queue_jobs (job_type, run_at)
      VALUES ('first', now()), ('later', now() + interval '1 second'),
             ('later', now() + interval '1002 milliseconds'), ('later', now() + interval '1004 milliseconds')`);
    const jobs = await started;
    assert.ok(waited, 'the claim never took the first job alone; the race was not exercised');
    assert.equal(jobs.map((j) => j.jobType).sort(), ['first', 'later', 'later', 'later']);
  } finally {
    Claimer.prototype.claim = claim;
    Claimer.prototype.nextRunDelayMs = nextRun;
    await queue.stop();
    await db.drop();
  }
});

test('a paused scheduler hands back the jobs a claim in flight delivered, and runs them after resume', async () => {
  const db = await createTestDatabase();
  const claim = Claimer.prototype.claim;
  let release!: () => void;
  let claimHeld!: () => void;
  const held = new Promise<void>((resolve) => (claimHeld = resolve));
  const gate = new Promise<void>((resolve) => (release = resolve));
  Claimer.prototype.claim = async function (this: Claimer, limit: number) {
    const jobs = await claim.call(this, limit);
    if (jobs.length) {
      claimHeld();
      await gate;
    }
    return jobs;
  };
  const queue = new BroadcastQueue({ connectionString: db.url, concurrency: 2, sweepMs: HOUR_MS, rescueAfterMs: 3 * HOUR_MS, handlers: { noop: () => 'ran' } });
  const starts: Job[] = [];
  queue.on('job:start', (job: Job) => starts.push(job));
  try {
    await queue.start();
    // Claimed, not handed over by the insert: a hand-over would pass the claim by and leave held unresolved.
    const { rows } = await queryWithoutHandOver(db, `INSERT INTO broadcast_queue_jobs (job_type) SELECT 'noop' FROM generate_series(1, 2) RETURNING job_id`);
    await held; // the claim has both jobs ('processing', attempt 1) and has not returned yet
    const paused = queue.pause();
    release();
    await paused;
    Claimer.prototype.claim = claim;
    assert.equal(starts, [], 'a paused scheduler started a job');
    const during = await db.pool.query(`SELECT status, attempts, locked_by FROM broadcast_queue_jobs ORDER BY job_id`);
    assert.equal(during.rows, rows.map(() => ({ status: 'pending', attempts: 0, locked_by: null })));
    const done = collectEvents<JobEvent>(queue, 'job:done', 2);
    queue.resume();
    await done;
    const after = await db.pool.query(`SELECT status, attempts FROM broadcast_queue_jobs ORDER BY job_id`);
    assert.equal(after.rows, rows.map(() => ({ status: 'completed', attempts: 1 })));
  } finally {
    Claimer.prototype.claim = claim;
    release();
    await queue.stop();
    await db.drop();
  }
});

test.run();
