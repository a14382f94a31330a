import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import { insertJob, jobRow, withTelegram } from '../helpers/telegram.js';
import { waitForEvent } from '../helpers/wait.js';

const CHATS = 100_000;

test(`a ${CHATS.toLocaleString('en')}-recipient broadcast reaches every chat exactly once`, async () => {
  // The stand-in has no limit here and ours is high: this is about exactly-once at volume, not pacing.
  await withTelegram({ queue: { rateLimit: 20_000 } }, async ({ db, api, queue }) => {
    await db.pool.query(`INSERT INTO broadcast_subscribers (chat_id, tags) SELECT g, '{all}' FROM generate_series(1, ${CHATS}) g`);
    const { rows } = await db.pool.query(`INSERT INTO broadcasts (title, message, audience) VALUES ('big', '{"text": "to everyone"}', '{"tags_any": ["all"]}') RETURNING broadcast_id`);
    const jobId = await insertJob(db, 'broadcast', { broadcast_id: rows[0].broadcast_id });
    const done = await waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobId === jobId, 400_000);
    assert.is(done.outcome.kind, 'completed');
    const result = (await jobRow(db, jobId)).result;
    assert.equal([result.total, result.sent, result.unknown, result.failed], [CHATS, CHATS, 0, 0]);
    assert.is(api.delivered.length, CHATS);
    let missing = 0;
    let twice = 0;
    for (let chat = 1; chat <= CHATS; chat++) {
      const n = api.deliveredCount(chat);
      if (n === 0) missing++;
      if (n > 1) twice++;
    }
    assert.equal({ missing, twice }, { missing: 0, twice: 0 });
  });
});

test.run();
