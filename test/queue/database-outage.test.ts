import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BroadcastQueue } from '../../src/broadcast-queue.js';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import { createTestDatabase } from '../helpers/db.js';
import { jobRow } from '../helpers/telegram.js';
import { waitForEvent } from '../helpers/wait.js';

test('a database outage under a handler snoozes the job instead of spending its attempts', async () => {
  const db = await createTestDatabase();
  let calls = 0;
  const outage = Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' });
  const queue = new BroadcastQueue({ connectionString: db.url, handlers: { flaky: () => { if (++calls === 1) throw outage; return 'ok'; } } });
  try {
    await queue.start();
    // Listened for before the INSERT: under load the first run can end before the INSERT's reply
    // is read, and the wait then caught the second, completed run.
    const firstDone = waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobType === 'flaky');
    const { rows } = await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, max_attempts) VALUES ('flaky', 1) RETURNING job_id`);
    const first = await firstDone;
    assert.is(first.job.jobId, rows[0].job_id);
    assert.is(first.outcome.kind, 'snooze');
    const row = await jobRow(db, rows[0].job_id);
    assert.equal([row.status, row.attempts], ['pending', 0]);
    assert.match(row.last_error, /database unavailable/);
  } finally {
    await queue.stop();
    await db.drop();
  }
});

test.run();
