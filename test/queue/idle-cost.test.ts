// Issue 17: an idle daemon costs at most 3 statements a minute. Its periodic work is the sweep
// (every 30 s by default) and pg-listen's connection check (every 2 minutes); everything else
// that used to run on a timer of its own (the count roll-up, the schedule ticker's re-read) rides
// on the sweep's statement, so the budget is counted per sweep here, through a proxy that reads
// the wire protocol, and needs no clock: 2 sweeps × 1 + 0.5 checks = 2.5 a minute.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BroadcastQueue } from '../../src/broadcast-queue.js';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import type { Rescuer } from '../../src/queue/rescuer.js';
import type { ScheduleTicker } from '../../src/schedules/ticker.js';
import { createTestDatabase } from '../helpers/db.js';
import { untilOffering } from '../helpers/idle-daemon.js';
import { StatementCounter } from '../../src/testing/statement-counter.js';
import { collectEvents, waitForEvent } from '../helpers/wait.js';

const SWEEP_MS = 100;
const SWEEPS = 10;

function partsOf(queue: BroadcastQueue): { rescuer: Rescuer; ticker: ScheduleTicker } {
  return (queue as unknown as { parts: { rescuer: Rescuer; ticker: ScheduleTicker } }).parts;
}

async function afterFirstPass(ticker: ScheduleTicker): Promise<void> {
  if (ticker.passes === 0) await waitForEvent(ticker, 'passed');
}

const isSweep = (text: string) => text.includes('INSERT INTO broadcast_queue_daemons');

test('an idle daemon sends one statement a sweep and nothing else (no jobs; a schedule years away)', async () => {
  const db = await createTestDatabase();
  const counter = await StatementCounter.start(db.url);
  // 29 February: a tick further away than a timer can wait (24.8 days).
  await db.pool.query(`INSERT INTO broadcast_queue_schedules (name, cron, job_type) VALUES ('leap-day', '0 0 29 2 *', 'noop')`);
  const queue = new BroadcastQueue({ connectionString: counter.connectionString(db.url), sweepMs: SWEEP_MS, handlers: { noop: () => null } });
  try {
    await queue.start();
    const { rescuer, ticker } = partsOf(queue);
    await afterFirstPass(ticker);
    await waitForEvent(rescuer, 'swept');
    // The start-up claims rewrite the offer of idle slots; the count starts once it is written.
    await untilOffering(queue, db, 2);
    counter.reset();
    const passes = ticker.passes;
    await collectEvents(rescuer, 'swept', SWEEPS);
    const texts = counter.statements.map((s) => s.text.replace(/\s+/g, ' ').slice(0, 80));
    assert.equal(texts.filter((t) => !isSweep(t)), [], 'statements besides the sweep');
    assert.is(texts.length, SWEEPS, 'one statement a sweep');
    assert.is(ticker.passes, passes, 'the ticker read nothing of its own');
    assert.is(counter.connections, 0, 'no connection opened');
  } finally {
    await queue.stop();
    await counter.close();
    await db.drop();
  }
});

test('finished jobs are folded by one roll-up after a sweep, then the sweeps are back to one statement', async () => {
  const db = await createTestDatabase();
  const counter = await StatementCounter.start(db.url);
  const queue = new BroadcastQueue({ connectionString: counter.connectionString(db.url), sweepMs: SWEEP_MS, handlers: { noop: () => null } });
  try {
    await queue.start();
    const { rescuer } = partsOf(queue);
    await waitForEvent(rescuer, 'swept');
    await untilOffering(queue, db, 2);
    counter.reset();
    // Jobs finished elsewhere (in a queue this daemon does not serve, so no claim follows the
    // notification), in two statements: two rows for one key in the counts, which a roll-up folds.
    for (let i = 0; i < 2; i++) {
      await db.pool.query(`INSERT INTO broadcast_queue_jobs (queue, job_type, status, started_at, finished_at)
                           SELECT 'elsewhere', 'noop', 'completed', now(), now() FROM generate_series(1, 3)`);
    }
    await collectEvents(rescuer, 'swept', SWEEPS);
    const { rows } = await db.pool.query(`SELECT count(*)::int AS rows, sum(jobs)::int AS jobs FROM broadcast_queue_job_counts`);
    assert.equal(rows[0], { rows: 1, jobs: 6 }, 'the counts are folded into one row');
    const texts = counter.statements.map((s) => s.text.replace(/\s+/g, ' ').slice(0, 80));
    assert.is(texts.filter((t) => t.includes('broadcast_queue_roll_up_counts')).length, 1, 'one roll-up');
    assert.is(texts.filter((t) => !isSweep(t)).length, 1, `only the roll-up besides the sweeps: ${JSON.stringify(texts.filter((t) => !isSweep(t)))}`);
  } finally {
    await queue.stop();
    await counter.close();
    await db.drop();
  }
});

test('a schedule whose notification never came is taken once the sweep has seen it, not at a re-read 30 s later', async () => {
  const db = await createTestDatabase();
  // Inserted from psql with sql/0023's trigger off: no NOTIFY, as if the listener had missed it.
  await db.pool.query('ALTER TABLE broadcast_queue_schedules DISABLE TRIGGER _900_schedules_inserted');
  const queue = new BroadcastQueue({ connectionString: db.url, sweepMs: SWEEP_MS, handlers: { tick: () => null } });
  try {
    await queue.start();
    const { rescuer, ticker } = partsOf(queue);
    await afterFirstPass(ticker);
    // The listener's first 'connected' asks the ticker for a pass too; it is over well before the
    // third sweep, so only the sweep can tell the ticker about the schedule inserted next.
    await collectEvents(rescuer, 'swept', 3);
    const ticked = waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobType === 'tick', 15_000);
    await db.pool.query(`INSERT INTO broadcast_queue_schedules (name, cron, job_type, queue) VALUES ('every-second', '* * * * * *', 'tick', 'broadcasts')`);
    assert.is((await ticked).outcome.kind, 'completed');
  } finally {
    await queue.stop();
    await db.drop();
  }
});

test.run();
