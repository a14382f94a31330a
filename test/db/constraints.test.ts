import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createTestDatabase } from '../helpers/db.js';

test('a job_id at or above 2^53 is refused at INSERT, not half-run', async () => {
  const db = await createTestDatabase();
  try {
    const error = await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_id, job_type) VALUES (9007199254740993, 'send')`).then(() => null, (e: Error) => e);
    assert.match(error!.message, /broadcast_queue_jobs_job_id_below_2_53/);
    const chat = await db.pool.query(`INSERT INTO broadcast_subscribers (chat_id) VALUES (9007199254740993)`).then(() => null, (e: Error) => e);
    assert.match(chat!.message, /broadcast_subscribers_chat_id_valid/);
  } finally {
    await db.drop();
  }
});

test.run();
