// A local-time broadcast running in a daemon (issue 16 part 3): each zone is sent at its moment,
// the job sleeps between zones instead of holding a worker, progress shows what waits, and the
// rate limit holds when a zone's recipients all come due at once. No hour is waited for: the
// local time given is a date and time whose moment is seconds away in one zone (and hours past
// in the others), read back from the clock when the test starts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { broadcastProgress } from '../../src/broadcast/progress.js';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import type { DeliveredRecord, FakeBotApi } from '../../src/testing/index.js';
import type { TestDatabase } from '../helpers/db.js';
import { insertJob, jobRow, range, withTelegram } from '../helpers/telegram.js';
import { collectEvents, waitForEvent, watchJobs } from '../helpers/wait.js';

/** `at` as a local date and time in `zone`, to the second: "2026-12-03T13:05:07". */
function localDateTime(zone: string, at: number): string {
  const parts = Object.fromEntries(new Intl.DateTimeFormat('en-US', {
    timeZone: zone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
  }).formatToParts(new Date(at)).map((p) => [p.type, p.value]));
  return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}:${parts.second}`;
}

/**
 * Wall-clock time of each delivery, taken as the stand-in records it (in this process). Its own
 * stamps are performance.now(), which drifted from the wall clock by 25 ms in 5 s on this machine,
 * while the moments are the database's wall clock.
 */
function deliveryTimes(api: FakeBotApi): Map<number, number> {
  const times = new Map<number, number>();
  api.on('delivered', (d: DeliveredRecord) => times.set(Number(d.chatId), Date.now()));
  return times;
}

/** A whole second at least `ms` from now. */
const secondsAway = (ms: number) => Math.ceil((Date.now() + ms) / 1000) * 1000;

async function subscribe(db: TestDatabase, chats: number[], zone: string | null): Promise<void> {
  await db.pool.query('INSERT INTO broadcast_subscribers (chat_id, time_zone) SELECT unnest($1::bigint[]), $2', [chats, zone]);
}

test('zones either side of UTC are each sent at their moment; between them the job sleeps, progress shows who waits, and it finishes after the last zone', async () => {
  await withTelegram({}, async ({ db, api, queue, addDaemon }) => {
    await subscribe(db, [1, 2], 'Asia/Tokyo');
    await subscribe(db, [3, 4], null); // the default zone, UTC
    await subscribe(db, [5, 6, 7], 'America/New_York');
    // New York's moment is 16 s away; Tokyo's (UTC+9) and UTC's are the same wall-clock time,
    // 14 and 5 hours earlier: past, so sent at once. Far enough for the job to sleep in between
    // (it waits in its slot only for rows due within 10 s).
    const due = secondsAway(16_000);
    const sentAt = deliveryTimes(api);
    const slept = waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobType === 'broadcast' && e.outcome.kind === 'snooze', 15_000);
    const jobId = await insertJob(db, 'broadcast', { message: { text: 'Good morning' }, audience: {}, deliver_at_local: localDateTime('America/New_York', due) });
    const snooze = await slept;
    assert.is(snooze.job.jobId, jobId);
    assert.is(snooze.outcome.kind === 'snooze' && snooze.outcome.reason, 'not_due');
    assert.equal(range(1, 7).map((chat) => api.deliveredCount(chat)), [1, 1, 1, 1, 0, 0, 0]);

    const broadcastId = (await jobRow(db, jobId)).payload.broadcast_id;
    const p = (await broadcastProgress(db.pool, broadcastId))!;
    assert.equal([p.status, p.sent, p.remaining, p.waiting, p.next_due_at?.getTime(), p.eta_seconds], ['sending', 4, 3, 3, due, null]);
    // The job gave its worker back until New York's moment, and spent no attempt on waiting.
    const sleeping = await jobRow(db, jobId);
    assert.equal([sleeping.status, sleeping.attempts, sleeping.last_error_reason], ['pending', 0, 'not_due']);
    assert.ok(sleeping.run_at.getTime() >= due - 1, `woken at ${sleeping.run_at.toISOString()}, before ${new Date(due).toISOString()}`);

    // The daemon that put it to sleep goes away, and a second job names the same broadcast: the
    // other daemon wakes both at the hour, one of them drives it (sql/0005), nobody gets it twice.
    await queue.stop();
    const other = await addDaemon();
    const completed = collectEvents<JobEvent>(other, 'job:done', 2, (e) => e.job.jobType === 'broadcast' && e.outcome.kind === 'completed', 40_000);
    const second = await insertJob(db, 'broadcast', { broadcast_id: broadcastId });
    assert.equal((await completed).map((e) => e.job.jobId).sort((a, b) => a - b), [jobId, second]);

    assert.equal(range(1, 7).map((chat) => api.deliveredCount(chat)), [1, 1, 1, 1, 1, 1, 1]);
    const early = [5, 6, 7].filter((chat) => !(sentAt.get(chat)! >= due));
    assert.equal(early, [], 'New York got it before its moment');
    const b = (await db.pool.query('SELECT status, sent, finished_at FROM broadcasts WHERE broadcast_id = $1', [broadcastId])).rows[0];
    assert.equal([b.status, b.sent], ['completed', 7]);
    assert.ok(b.finished_at.getTime() >= due, 'finished before the last zone was sent');
    const attempts = await db.pool.query('SELECT DISTINCT attempts FROM broadcast_deliveries WHERE broadcast_id = $1', [broadcastId]);
    assert.equal(attempts.rows, [{ attempts: 1 }], 'waiting for the hour spent attempts');
    const done = (await broadcastProgress(db.pool, broadcastId))!;
    assert.equal([done.waiting, done.next_due_at], [0, null]);
  });
});

test('a zone whose recipients all come due at once is sent at the rate limit, not in a burst, and not before its moment', async () => {
  const RATE = 20;
  await withTelegram({ queue: { rateLimit: RATE } }, async ({ db, api, queue }) => {
    const chats = range(100, 60);
    await subscribe(db, chats, 'Asia/Kolkata');
    const due = secondsAway(3_000);
    const sentAt = deliveryTimes(api);
    const jobs = watchJobs(queue);
    const jobId = await insertJob(db, 'broadcast', { message: { text: 'Namaste' }, audience: {}, deliver_at_local: localDateTime('Asia/Kolkata', due) });
    const done = await jobs.done(jobId, (e) => e.outcome.kind !== 'snooze', 30_000);
    assert.is(done.outcome.kind, 'completed');
    assert.ok(chats.every((chat) => api.deliveredCount(chat) === 1), 'a chat missed or got twice');
    assert.equal(chats.filter((chat) => !(sentAt.get(chat)! >= due)), [], 'sent before the zone\'s moment');
    assert.ok(api.maxCallsInWindow(1000) <= RATE, `busiest second: ${api.maxCallsInWindow(1000)} calls (limit ${RATE})`);
  });
});

test.run();
