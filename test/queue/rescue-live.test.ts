import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BroadcastQueue } from '../../src/broadcast-queue.js';
import { SnoozeError } from '../../src/errors.js';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { waitForEvent } from '../helpers/wait.js';

const jobRow = async (db: TestDatabase, jobId: number) =>
  (await db.pool.query(`SELECT status, attempts, locked_by, result, errors, run_at > now() AS later FROM broadcast_queue_jobs WHERE job_id = $1`, [jobId])).rows[0];

/**
 * A daemon whose one job is held at a gate, and a judge that declares it hung at its first sweep:
 * the stalled daemon's heartbeat is made an hour old, as when its process is stopped or starved,
 * while it still holds its liveness lock. The judge runs no such job itself and sweeps only once.
 */
async function rescuedWhileAlive(db: TestDatabase, outcome: () => Promise<unknown>) {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const stalled = new BroadcastQueue({ connectionString: db.url, concurrency: 1, sweepMs: 3_600_000, rescueAfterMs: 10_800_000, handlers: { work: async () => { await gate; return outcome(); } } });
  const judge = new BroadcastQueue({ connectionString: db.url, sweepMs: 600_000, rescueAfterMs: 1_800_000, handlers: {} });
  await stalled.start();
  const started = waitForEvent(stalled, 'job:start');
  const jobId = Number((await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type) VALUES ('work') RETURNING job_id`)).rows[0].job_id);
  await started;
  await db.pool.query(`UPDATE broadcast_queue_daemons SET last_heartbeat_at = now() - interval '1 hour'`);
  const rescued = waitForEvent(judge, 'rescued');
  await judge.start();
  await rescued;
  return { jobId, stalled, judge, release };
}

test("a job rescued from a live daemon judged hung takes that daemon's outcome while nobody claimed it since", async () => {
  // A stalled or starved daemon (chaos --stress: SIGSTOP, late timers) was declared hung while its
  // send call was out. Its outcome was discarded and the job's next attempt, which cannot know
  // whether the call went out, failed it as "outcome unknown" although the message had arrived.
  const db = await createTestDatabase();
  let world: Awaited<ReturnType<typeof rescuedWhileAlive>> | null = null;
  try {
    world = await rescuedWhileAlive(db, async () => ({ message_id: 42 }));
    const { jobId, stalled, release } = world;
    const handedBack = await jobRow(db, jobId);
    assert.is(handedBack.status, 'pending');
    assert.is(handedBack.locked_by, null);
    assert.ok(handedBack.later, 'a hung daemon, which still holds its lock, gets a sweep to report before its job comes due');
    const done = waitForEvent<JobEvent>(stalled, 'job:done', (e) => e.job.jobId === jobId);
    release();
    assert.is((await done).recorded, true, "the live daemon's outcome was discarded");
    const row = await jobRow(db, jobId);
    assert.equal([row.status, row.attempts, row.result], ['completed', 1, { message_id: 42 }]);
    assert.equal(row.errors.map((e: { rescued?: boolean; after_rescue?: boolean }) => [e.rescued ?? false, e.after_rescue ?? false]), [[true, false], [false, true]]);
  } finally {
    world?.release();
    await world?.stalled.stop();
    await world?.judge.stop();
    await db.drop();
  }
});

test('a snooze reported after the rescue lets the next attempt run: nothing was sent', async () => {
  // A send that had not gone out yet gives its attempt back (a snooze). Written over the rescue, it
  // must not leave the rescue as the last word, or the next attempt of a send job would take it
  // for a cut-short call and fail the job as "outcome unknown" without ever sending.
  const db = await createTestDatabase();
  let world: Awaited<ReturnType<typeof rescuedWhileAlive>> | null = null;
  try {
    let runs = 0;
    world = await rescuedWhileAlive(db, async () => {
      if (++runs === 1) throw new SnoozeError(0, 'interrupted before the message was sent');
      return 'sent by the next attempt';
    });
    const { jobId, stalled, release } = world;
    const snoozed = waitForEvent<JobEvent>(stalled, 'job:done', (e) => e.job.jobId === jobId);
    const ranAgain = waitForEvent<JobEvent>(stalled, 'job:done', (e) => e.job.jobId === jobId && e.outcome.kind === 'completed');
    release();
    assert.is((await snoozed).recorded, true, "the live daemon's snooze was discarded");
    // Handed back by that snooze, due now: this daemon runs it again.
    assert.is((await ranAgain).recorded, true);
    const row = await jobRow(db, jobId);
    assert.equal([row.status, row.attempts, row.result], ['completed', 1, 'sent by the next attempt']);
    assert.equal(row.errors.map((e: { rescued?: boolean; after_rescue?: boolean }) => [e.rescued ?? false, e.after_rescue ?? false]), [[true, false], [false, true]], 'the rescue stayed the last word before the next attempt');
  } finally {
    world?.release();
    await world?.stalled.stop();
    await world?.judge.stop();
    await db.drop();
  }
});

test.run();
