import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { insertJob, withTelegram } from '../helpers/telegram.js';
import { watchJobs } from '../helpers/wait.js';

test('a broadcast whose job fails for good is closed as failed, not left sending', async () => {
  await withTelegram({}, async ({ db, queue }) => {
    const { rows } = await db.pool.query(`INSERT INTO broadcasts (message, audience) VALUES ('{"txt": "typo"}', '{"chat_ids": [1, 2]}') RETURNING broadcast_id`);
    const jobs = watchJobs(queue);
    const jobId = await insertJob(db, 'broadcast', { broadcast_id: rows[0].broadcast_id });
    await jobs.done(jobId);
    const b = (await db.pool.query('SELECT status, failure_reason FROM broadcasts')).rows[0];
    assert.is(b.status, 'failed');
    assert.match(b.failure_reason, /unknown field "txt"/);
  });
});

test.run();
