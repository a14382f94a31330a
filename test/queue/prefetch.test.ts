import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BroadcastQueue } from '../../src/broadcast-queue.js';
import { createTestDatabase } from '../helpers/db.js';
import { waitForEvent } from '../helpers/wait.js';

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
    await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, payload) SELECT 'gated', jsonb_build_object('seq', g) FROM generate_series(1, 20) g`);
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

test.run();
