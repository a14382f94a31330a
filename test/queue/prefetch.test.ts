import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BroadcastQueue } from '../../src/broadcast-queue.js';
import { createTestDatabase, queryWithoutHandOver } from '../helpers/db.js';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import { until, waitForEvent } from '../helpers/wait.js';

/** The advisory lock key that holds a claim in the database. */
const CLAIM_GATE = 4_242_001;

// With one claim at a time and no claim while every slot was busy, a prefetch buffer was only
// refilled once it had run dry: the slots then idled for a whole round trip every buffer's worth
// of short jobs, which capped throughput well below the database's.
test('prefetch tops its buffer up while the slot is busy, before the buffer runs dry', async () => {
  const db = await createTestDatabase();
  const gates: (() => void)[] = [];
  let started = 0;
  let open = false;
  let allDone!: () => void;
  const done = new Promise<void>((resolve) => (allDone = resolve));
  const queue = new BroadcastQueue({
    connectionString: db.url,
    concurrency: 1,
    prefetch: 4,
    handlers: {
      // Jobs 1–3 finish at once; from job 4 on each waits until the test lets it go.
      gated: (job) => {
        started++;
        if (open || (job.payload.seq as number) <= 3) return;
        return new Promise<void>((resolve) => gates.push(resolve));
      },
    },
  });
  let finished = 0;
  queue.on('job:done', () => ++finished === 20 && allDone());
  try {
    await queue.start();
    const firstClaim = waitForEvent<number>(queue, 'claimed');
    const secondClaim = waitForEvent<number>(queue, 'claimed', () => started > 1);
    // Claimed, not handed to the idle daemon by the insert: this is a test of the claim's refill.
    await queryWithoutHandOver(db, `INSERT INTO broadcast_queue_jobs (job_type, payload) SELECT 'gated', jsonb_build_object('seq', g) FROM generate_series(1, 20) g`);
    assert.is(await firstClaim, 5, 'one running and four prefetched');
    // Job 4 now holds the only slot and job 5 waits in the buffer: the refill must not wait for it.
    assert.ok((await secondClaim) > 0);
    assert.is(started, 4, 'the second claim came only after the buffer ran dry');
    open = true;
    for (const release of gates) release();
    await done;
    const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM broadcast_queue_jobs WHERE status = 'completed' AND attempts = 1`);
    assert.is(rows[0].n, 20);
  } finally {
    for (const release of gates) release();
    await queue.stop();
    await db.drop();
  }
});

// A notification that arrived while a claim was in flight set "claim again", but the claim came
// back short (so "nothing more is due") and filled every slot: the claim-again found no free slot
// and gave up, and no freed slot claimed after it. The new job waited for the 30 s sweep.
test('a job inserted while a claim is in flight is claimed once a slot frees, not at the sweep', async () => {
  const db = await createTestDatabase();
  // The claim is held inside PostgreSQL: a trigger makes its UPDATE of the 'held' jobs wait for an
  // advisory lock this test holds, as a slow claim statement would wait on a busy server.
  await db.pool.query(`CREATE FUNCTION hold_claim() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_advisory_xact_lock_shared(${CLAIM_GATE}); RETURN NEW; END $$;
                       CREATE TRIGGER hold_claim BEFORE UPDATE ON broadcast_queue_jobs FOR EACH ROW
                         WHEN (OLD.status = 'pending' AND NEW.status = 'processing' AND NEW.job_type = 'held') EXECUTE FUNCTION hold_claim()`);
  const gate = await db.pool.connect();
  await gate.query('SELECT pg_advisory_lock($1)', [CLAIM_GATE]);
  let gateOpen = false;
  const openGate = async () => {
    if (gateOpen) return;
    gateOpen = true;
    await gate.query('SELECT pg_advisory_unlock($1)', [CLAIM_GATE]);
  };
  const gates: (() => void)[] = [];
  const queue = new BroadcastQueue({
    connectionString: db.url,
    concurrency: 2,
    prefetch: 4,
    sweepMs: 3_600_000,
    rescueAfterMs: 3 * 3_600_000,
    handlers: { held: () => new Promise<void>((resolve) => gates.push(resolve)), quick: () => undefined },
  });
  try {
    await queue.start();
    // Both inserts are claimed, not handed to the idle daemon (its hand-over would wait at the gate).
    await queryWithoutHandOver(db, `INSERT INTO broadcast_queue_jobs (job_type) SELECT 'held' FROM generate_series(1, 3)`);
    // The claim has its three jobs locked and waits at the gate.
    await until(async () => (await db.pool.query(`SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND NOT granted`, [CLAIM_GATE])).rowCount);
    const notification = waitForEvent(queue, 'listener:notification');
    const late = (await queryWithoutHandOver(db, `INSERT INTO broadcast_queue_jobs (job_type) VALUES ('quick') RETURNING job_id`)).rows[0].job_id as number;
    await notification;
    const lateDone = waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobId === late);
    await openGate(); // three of six: both slots busy, one job prefetched
    await until(async () => (gates.length === 2 ? true : null));
    for (const release of gates.splice(0)) release();
    await until(async () => (gates.length === 1 ? true : null));
    gates.splice(0)[0]!();
    await lateDone;
  } finally {
    await openGate();
    gate.release();
    for (const release of gates) release();
    await queue.stop();
    await db.drop();
  }
});

test.run();
