import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BroadcastQueue } from '../../src/broadcast-queue.js';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import { errorMessage } from '../../src/log.js';
import { createTestDatabase } from '../helpers/db.js';
import { waitForEvent } from '../helpers/wait.js';

const HOUR_MS = 3_600_000;

function circular(): unknown {
  const value: Record<string, unknown> = { reason: 'loop' };
  value.self = value;
  return value;
}

function errorWithThrowingMessage(): Error {
  const error = new Error('hidden');
  Object.defineProperty(error, 'message', {
    get() {
      throw new Error('message getter exploded');
    },
  });
  return error;
}

// Each of these once made errorMessage throw inside the worker pool's catch.
const THROWN: Record<string, () => unknown> = {
  circular,
  bigint: () => 10n,
  badMessage: errorWithThrowingMessage,
  badToJSON: () => ({ toJSON() { throw new Error('toJSON exploded'); } }),
};

test('errorMessage describes anything thrown without throwing itself', () => {
  for (const [name, make] of Object.entries(THROWN)) {
    const text = errorMessage(make());
    assert.type(text, 'string', name);
    assert.ok(text.length > 0, name);
  }
  assert.match(errorMessage(10n), /10/);
  assert.match(errorMessage(circular()), /loop/);
  assert.match(errorMessage(errorWithThrowingMessage()), /Error/);
});

test('whatever a handler throws, its job fails with a readable message and its slot is free again', async () => {
  const db = await createTestDatabase();
  const handlers = Object.fromEntries(Object.entries(THROWN).map(([type, make]) => [type, () => { throw make(); }]));
  // One slot: a job whose outcome was lost would keep it, and the last job would never start.
  const queue = new BroadcastQueue({ connectionString: db.url, sweepMs: HOUR_MS, concurrency: 1, handlers: { ...handlers, noop: () => 'ran' } });
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  try {
    await queue.start();
    const ids: Record<string, number> = {};
    for (const type of Object.keys(THROWN)) {
      const done = waitForEvent<JobEvent>(queue, 'job:done');
      ids[type] = (await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, max_attempts) VALUES ($1, 1) RETURNING job_id`, [type])).rows[0].job_id;
      await done;
    }
    const last = waitForEvent<JobEvent>(queue, 'job:done');
    await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type) VALUES ('noop')`);
    assert.is((await last).outcome.kind, 'completed');
    const { rows } = await db.pool.query(`SELECT job_type, status, last_error FROM broadcast_queue_jobs WHERE job_id = ANY($1) ORDER BY job_id`, [Object.values(ids)]);
    for (const row of rows) {
      assert.is(row.status, 'failed', row.job_type);
      assert.match(row.last_error, /\S/, row.job_type);
    }
    const byType = Object.fromEntries(rows.map((r) => [r.job_type, r.last_error]));
    assert.match(byType.bigint, /^10 \(attempt 1 of 1\)$/);
    assert.match(byType.circular, /loop/);
    assert.equal(unhandled, []);
  } finally {
    process.off('unhandledRejection', onUnhandled);
    await queue.stop();
    await db.drop();
  }
});

test.run();
