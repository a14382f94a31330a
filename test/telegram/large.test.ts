import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { insertJob, jobRow, withTelegram } from '../helpers/telegram.js';
import { watchJobs } from '../helpers/wait.js';

const CHATS = 100_000;

test(`a ${CHATS.toLocaleString('en')}-recipient broadcast reaches no chat twice, and every chat whose call did not time out`, async () => {
  // The stand-in has no limit here and ours is high: this is about exactly-once at volume, not pacing.
  await withTelegram({ queue: { rateLimit: 20_000 } }, async ({ db, api, queue }) => {
    await db.pool.query(`INSERT INTO broadcast_subscribers (chat_id, tags) SELECT g, '{all}' FROM generate_series(1, ${CHATS}) g`);
    const { rows } = await db.pool.query(`INSERT INTO broadcasts (title, message, audience) VALUES ('big', '{"text": "to everyone"}', '{"tags_any": ["all"]}') RETURNING broadcast_id`);
    const jobs = watchJobs(queue);
    const jobId = await insertJob(db, 'broadcast', { broadcast_id: rows[0].broadcast_id });
    const done = await jobs.done(jobId, undefined, 400_000);
    assert.is(done.outcome.kind, 'completed');
    const result = (await jobRow(db, jobId)).result;
    // On a machine this busy a call can pass its 10 s timeout; at-most-once then counts it unknown
    // rather than risk a duplicate. Nobody may get it twice, and every 'sent' row arrived.
    assert.is(result.total, CHATS);
    assert.is(result.sent + result.unknown, CHATS);
    assert.ok(result.unknown <= CHATS / 100, `${result.unknown} unknown outcomes`);
    let twice = 0;
    for (let chat = 1; chat <= CHATS; chat++) if (api.deliveredCount(chat) > 1) twice++;
    assert.is(twice, 0, 'chats that got the message twice');
    const sentChats = await db.pool.query(`SELECT chat_id FROM broadcast_deliveries WHERE status = 'sent'`);
    assert.ok(sentChats.rows.every((r) => api.deliveredCount(r.chat_id) === 1), 'a row marked sent never arrived');
    const unknownReasons = await db.pool.query(`SELECT DISTINCT outcome FROM broadcast_deliveries WHERE status = 'unknown'`);
    assert.ok(unknownReasons.rows.every((r) => r.outcome === 'transient:aborted'), JSON.stringify(unknownReasons.rows));
  });
});

test.run();
