// prefetch 'auto' (the default, issue 17): the buffer follows how long jobs take. Jobs that take
// longer than the horizon hold nothing back from other daemons; short ones get a local buffer.
// The handlers' durations are made long by waiting, never asserted on.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { setTimeout as delay } from 'node:timers/promises';
import { BroadcastQueue } from '../../src/broadcast-queue.js';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import { createTestDatabase, queryWithoutHandOver } from '../helpers/db.js';
import { collectEvents, waitForEvent } from '../helpers/wait.js';

/** How many jobs the first claim takes when 6 arrive at once at one slot, after 20 warm-up jobs. */
async function firstClaimAfterWarmUp(kind: 'slow' | 'quick'): Promise<number> {
  const db = await createTestDatabase();
  const queue = new BroadcastQueue({
    connectionString: db.url,
    concurrency: 1,
    handlers: {
      // Warm-up jobs: 50 ms each (longer than the 10 ms horizon) or nothing at all.
      warm: () => (kind === 'slow' ? delay(50).then(() => null) : null),
      work: () => null,
    },
  });
  try {
    await queue.start();
    const warmed = collectEvents<JobEvent>(queue, 'job:done', 20, (e) => e.job.jobType === 'warm', 30_000);
    await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type) SELECT 'warm' FROM generate_series(1, 20)`);
    await warmed;
    const claimed = waitForEvent<number>(queue, 'claimed');
    const allDone = collectEvents<JobEvent>(queue, 'job:done', 6, (e) => e.job.jobType === 'work');
    // Claimed, not handed to the idle daemon by the insert: the claim's size is under test.
    await queryWithoutHandOver(db, `INSERT INTO broadcast_queue_jobs (job_type) SELECT 'work' FROM generate_series(1, 6)`);
    const first = await claimed;
    await allDone;
    return first;
  } finally {
    await queue.stop();
    await db.drop();
  }
}

test('by default, jobs longer than the horizon hold nothing back: a claim takes only what the free slots run', async () => {
  assert.is(await firstClaimAfterWarmUp('slow'), 1);
});

test('by default, short jobs get a buffer: a claim takes more than the free slots', async () => {
  assert.is(await firstClaimAfterWarmUp('quick'), 6);
});

test.run();
