// The jobs claim must keep its plan whatever ANALYZE last saw (issue 13 item 2). A jobs table goes
// empty overnight and autoanalyze records it so: every row completed, none pending. The planner
// then believes the next burst has no due job, and with two partial indexes on pending jobs it
// read the burst through the narrower one (run_at only) and sorted every pending row for each
// claim of ten: 0.3× the rate. These tests put the table in each state a production table passes
// through and check the plan's shape (not its time, which a busy machine blurs).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CLAIM_SQL, Claimer, NEXT_RUN_SQL } from '../../src/queue/claimer.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { explainedInRollback as explained, nodes, prepareStatistics, STATISTICS_STATES as STATES, type StatisticsState } from '../helpers/plans.js';

const BURST = 3_000;
const prepare = (db: TestDatabase, state: StatisticsState) => prepareStatistics(db, state, BURST);

test('the claim reads due jobs in the claim index order, whatever the statistics', async () => {
  const db = await createTestDatabase();
  try {
    // The embedded cluster the runner starts keeps PostgreSQL's default, autovacuum on.
    if (process.env.BQ_TEST_EMBEDDED) assert.is((await db.pool.query('SHOW autovacuum')).rows[0].autovacuum, 'on');
    for (const state of STATES) {
      await prepare(db, state);
      const plan = await explained(db, CLAIM_SQL, [['broadcasts'], ['noop'], 10, 'test-daemon']);
      const shown = `${state}:\n${JSON.stringify(plan, null, 1)}`;
      // The claim's own lock, not the one on this daemon's idle-slot offer that it withdraws.
      const lock = nodes(plan).find((n) => n['Node Type'] === 'LockRows' && nodes(n).some((below) => below['Relation Name'] === 'broadcast_queue_jobs'));
      assert.ok(lock, `the claim locks the rows it picks (${shown})`);
      // Below the lock: a scan of the claim index in its order, stopped by the LIMIT. A Sort there
      // reads and sorts every pending job for each claim.
      const below = nodes(lock!).slice(1);
      assert.equal(below.map((n) => n['Node Type']), ['Index Scan'], shown);
      assert.is(below[0]!['Index Name'], 'broadcast_queue_jobs_claim_by_type_idx', shown);
      assert.ok(below[0]!['Actual Rows']! <= 10, `${state}: the claim read ${below[0]!['Actual Rows']} rows for 10`);
    }
  } finally {
    await db.drop();
  }
});

test('the next-wake query reads one index entry per priority, whatever the statistics', async () => {
  const db = await createTestDatabase();
  try {
    for (const state of STATES) {
      await prepare(db, state);
      await db.pool.query(`UPDATE broadcast_queue_jobs SET priority = job_id % 3, run_at = now() + interval '1 hour'`);
      const plan = await explained(db, NEXT_RUN_SQL, [['broadcasts'], ['noop']]);
      const read = nodes(plan).filter((n) => n['Relation Name'] === 'broadcast_queue_jobs');
      // EXPLAIN rounds rows per loop: a loop that found nothing may count as one.
      const rows = read.reduce((sum, n) => sum + n['Actual Rows']! * n['Actual Loops']!, 0);
      assert.ok(rows <= 10, `${state}: the next-wake query read ${rows} jobs for 3 priorities:\n${JSON.stringify(plan, null, 1)}`);
    }
  } finally {
    await db.drop();
  }
});

test('the next wake is the earliest pending job of any priority, queue and job type', async () => {
  const db = await createTestDatabase();
  try {
    const claimer = new Claimer(db.pool, 'd1', ['broadcasts', 'other'], ['noop', 'send']);
    assert.is(await claimer.nextRunDelayMs(), null);
    await db.pool.query(`INSERT INTO broadcast_queue_jobs (queue, job_type, priority, run_at) VALUES
                           ('broadcasts', 'noop', 5, now() + interval '3 hours'),
                           ('broadcasts', 'noop', 0, now() + interval '2 hours'),
                           ('broadcasts', 'noop', -5, now() + interval '4 hours'),
                           ('other', 'send', 1, now() + interval '1 hour'),
                           ('other', 'send', 7, now() + interval '5 hours'),
                           ('elsewhere', 'noop', 0, now() + interval '1 minute'),
                           ('broadcasts', 'custom', 0, now() + interval '1 minute')`);
    const hour = await claimer.nextRunDelayMs();
    assert.ok(hour! > 3_500_000 && hour! <= 3_600_000, `next wake in ${hour} ms, want about an hour`);
    await db.pool.query(`INSERT INTO broadcast_queue_jobs (queue, job_type, priority, run_at) VALUES ('broadcasts', 'noop', -1000000, now() - interval '1 second')`);
    assert.ok((await claimer.nextRunDelayMs())! <= 0, 'a due job of the lowest priority is due now');
    await db.pool.query(`UPDATE broadcast_queue_jobs SET status = 'completed' WHERE priority = -1000000`);
    assert.ok((await claimer.nextRunDelayMs())! > 3_500_000, 'a finished job is not waited for');
  } finally {
    await db.drop();
  }
});

test('a claim after stale statistics still takes jobs by priority, then run_at, then job_id', async () => {
  const db = await createTestDatabase();
  try {
    await prepare(db, 'analyzed after a drained burst');
    await db.pool.query(`UPDATE broadcast_queue_jobs SET priority = 1, run_at = now() - interval '1 minute' WHERE status = 'pending' AND job_id % 1000 = 7`);
    const { rows } = await db.pool.query(`SELECT job_id FROM broadcast_queue_jobs WHERE status = 'pending' ORDER BY priority DESC, run_at, job_id LIMIT 5`);
    const claimer = new Claimer(db.pool, 'd1', ['broadcasts'], ['noop']);
    const jobs = await claimer.claim(5);
    assert.equal(jobs.map((j) => j.jobId), rows.map((r) => Number(r.job_id)));
    assert.equal(jobs.slice(0, 3).map((j) => j.priority), [1, 1, 1]);
  } finally {
    await db.drop();
  }
});

test.run();
