import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import { sleep, type Sleep } from '../../src/time.js';
import { insertJob, range, withTelegram } from '../helpers/telegram.js';
import { collectEvents, watchJobs } from '../helpers/wait.js';

// The safety timeout only keeps a broken run from hanging the suite; nothing asserts on time.
const SAFETY_MS = 150_000;
const RATE = 100;

/** Every wait of the send path ends 100–500 ms late, as on a busy machine (seeded, so runs repeat). */
function lateSleep(seed: number): Sleep {
  let state = seed >>> 0;
  const random = () => {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    return state / 2 ** 32;
  };
  return (ms, signal) => sleep(ms + 100 + random() * 400, signal);
}

test('timers that all fire 100–500 ms late: every row, groups included, and every send job reaches an outcome, and no second holds more than the limit', async () => {
  // A slot reached more than 10 ms late was dropped, and a new one reserved was reached late
  // again: with every timer late nothing was ever sent, broadcasts and send jobs alike.
  const chats = [...range(1, 150), ...range(1, 10).map((g) => -g)];
  await withTelegram({ api: { retryAfterSeconds: 1, groupPerMinute: 20 }, queue: { rateLimit: RATE, sleep: lateSleep(10) } }, async ({ db, api, queue }) => {
    let handedBack = 0;
    queue.telegram!.on('delivery', (d: { jobType: string; outcome: string }) => {
      if (d.jobType === 'broadcast' && d.outcome === 'deferred') handedBack++;
    });
    // A 429 at the start hands the first batch back, as a busy machine's late slots did.
    api.setFaults({ storm: true });
    const jobs = watchJobs(queue);
    const broadcastJob = await insertJob(db, 'broadcast', { message: { text: 'late timers' }, chat_ids: chats });
    await api.waitFor('call', (c) => c.status === 429);
    api.setFaults({ storm: false });
    const sendChats = range(10_001, 5);
    const sendsDone = collectEvents<JobEvent>(queue, 'job:done', sendChats.length, (e) => e.job.jobType === 'send' && e.outcome.kind === 'completed', SAFETY_MS);
    for (const chat of sendChats) await insertJob(db, 'send', { chat_id: chat, message: { text: 'late timers, one message' } });
    const done = await jobs.done(broadcastJob, (e) => e.outcome.kind !== 'retry', SAFETY_MS);
    assert.is(done.outcome.kind, 'completed');
    await sendsDone;

    const { rows } = await db.pool.query(`SELECT status, count(*)::int AS n FROM broadcast_deliveries GROUP BY status`);
    assert.equal(rows, [{ status: 'sent', n: chats.length }]);
    for (const chat of [...chats, ...sendChats]) assert.is(api.deliveredCount(chat), 1, `chat ${chat}`);
    // Counted over the stand-in's arrival times, the storm's refused calls included.
    assert.ok(api.maxCallsInWindow(1000) <= RATE, `busiest second: ${api.maxCallsInWindow(1000)} calls (limit ${RATE})`);
    // Missed slots are caught up, not dropped: dropping them sent about one row per batch and
    // handed the rest back to the ledger, 1,966 times for these 160 rows (about 135 with catch-up,
    // the 429's batch among them).
    assert.ok(handedBack < 3 * chats.length, `${handedBack} rows handed back for ${chats.length} sent`);
  });
});

test.run();
