import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BroadcastQueue } from '../../src/broadcast-queue.js';
import { createTestDatabase } from '../helpers/db.js';

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

test.run();
