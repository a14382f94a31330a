import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BroadcastQueue } from '../../src/broadcast-queue.js';
import { createTestDatabase } from '../helpers/db.js';
import { insertJob, jobRow } from '../helpers/telegram.js';
import { watchJobs } from '../helpers/wait.js';

test('a result PostgreSQL refuses fails that job and later outcomes are still written', async () => {
  const db = await createTestDatabase();
  const queue = new BroadcastQueue({
    connectionString: db.url,
    handlers: {
      // A NUL character is valid JSON but cannot be stored in jsonb; a BigInt cannot be serialised.
      nul: () => ({ preview: 'a\u0000b' }),
      bigint: () => ({ n: 10n }),
      fine: () => ({ ok: true }),
    },
  });
  try {
    await queue.start();
    const jobs = watchJobs(queue);
    for (const type of ['nul', 'bigint']) {
      const jobId = await insertJob(db, type, {});
      const done = await jobs.done(jobId);
      assert.ok(done.recorded, `${type}: the outcome was not written`);
      const row = await jobRow(db, jobId);
      assert.is(row.status, 'failed', `${type}: ${row.status}`);
      assert.match(row.last_error, /result could not be stored/);
    }
    const jobId = await insertJob(db, 'fine', {});
    await jobs.done(jobId);
    const row = await jobRow(db, jobId);
    assert.is(row.status, 'completed');
    assert.equal(row.result, { ok: true });
  } finally {
    await queue.stop();
    await db.drop();
  }
});

test.run();
