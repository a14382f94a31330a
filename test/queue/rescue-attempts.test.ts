import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BroadcastQueue } from '../../src/broadcast-queue.js';
import { createTestDatabase } from '../helpers/db.js';
import { jobRow } from '../helpers/telegram.js';

test('three daemon deaths do not fail a broadcast: a rescue continues it without spending an attempt', async () => {
  const db = await createTestDatabase();
  const rescuer = new BroadcastQueue({ connectionString: db.url, sweepMs: 200, handlers: {} });
  try {
    await db.pool.query(`INSERT INTO broadcast_queue_daemons (daemon_id, lock_key, hostname, pid, queues, job_types, concurrency, version) VALUES ('gone', 1, 'h', 1, '{broadcasts}', '{broadcast}', 1, 'x')`);
    const { rows } = await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, payload, status, locked_by, attempts, max_attempts) VALUES ('broadcast', '{"broadcast_id": 1}', 'processing', 'gone', 3, 3) RETURNING job_id`);
    await rescuer.start();
    await rescuer.rescueNow();
    const row = await jobRow(db, rows[0].job_id);
    assert.equal([row.status, row.attempts], ['pending', 2]);
  } finally {
    await rescuer.stop();
    await db.drop();
  }
});

test.run();
