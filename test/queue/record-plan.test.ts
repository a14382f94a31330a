// The outcome write must read only its own batch's rows whatever ANALYZE last saw. Its ownership
// guard, written as (processing AND ours) OR (pending AND rescued), let the planner read it through
// two partial indexes (processing by locked_by, the claim index) when the statistics predated the
// burst: each batch of completions then read every pending job of the burst to keep its own, and a
// 20,000-job drain paid for that on every batch. These tests check the plan's shape and the rows it
// reads (not its time, which a busy machine blurs) in each state a production table passes through.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Claimer } from '../../src/queue/claimer.js';
import { RECORD_SQL, recordParams, type RecordedRun } from '../../src/queue/recorder.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { explainedInRollback, nodes, prepareStatistics, STATISTICS_STATES as STATES, type StatisticsState } from '../helpers/plans.js';

const BURST = 10_000;
const BATCH = 100;
const prepare = (db: TestDatabase, state: StatisticsState) => prepareStatistics(db, state, BURST);
const explained = (db: TestDatabase, params: unknown[]) => explainedInRollback(db, RECORD_SQL, params);

test('a batch of outcomes reads its own rows by key, whatever the statistics', async () => {
  const db = await createTestDatabase();
  try {
    if (process.env.BQ_TEST_EMBEDDED) assert.is((await db.pool.query('SHOW autovacuum')).rows[0].autovacuum, 'on');
    for (const state of STATES) {
      await prepare(db, state);
      const claimer = new Claimer(db.pool, 'd1', ['broadcasts'], ['noop']);
      // A few batches claimed and completed first, as in a drain: their dead entries stay in the
      // indexes until a vacuum.
      for (let round = 0; round < 3; round++) {
        const jobs = await claimer.claim(BATCH);
        const runs: RecordedRun[] = jobs.map((j) => ({ jobId: j.jobId, attempt: j.attempt, claimedAt: j.claimedAt, outcome: { kind: 'completed', result: null } }));
        const params = recordParams(runs, 'd1');
        if (round < 2) {
          assert.is((await db.pool.query(RECORD_SQL, params)).rowCount, BATCH);
          continue;
        }
        const plan = await explained(db, params);
        const shown = `${state}:\n${JSON.stringify(plan, null, 1)}`;
        assert.is(plan['Actual Rows'], BATCH, `${state}: the batch was not written whole`);
        const reads = nodes(plan).filter((n) => n['Relation Name'] === 'broadcast_queue_jobs' && n['Node Type'] !== 'ModifyTable');
        const rows = reads.reduce((sum, n) => sum + (n['Actual Rows']! + (n['Rows Removed by Filter'] ?? 0) + (n['Rows Removed by Index Recheck'] ?? 0)) * n['Actual Loops']!, 0);
        assert.ok(rows <= BATCH, `${state}: the write read ${rows} jobs for a batch of ${BATCH}: ${shown}`);
        const indexes = nodes(plan).filter((n) => n['Index Name']).map((n) => n['Index Name']);
        assert.ok(indexes.every((i) => i === 'broadcast_queue_jobs_pkey'), `${state}: read through ${indexes}: ${shown}`);
      }
    }
  } finally {
    await db.drop();
  }
});

test.run();
