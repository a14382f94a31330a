// The jobs claim against planner statistics that do not describe the table (issue 13 item 2): a
// burst of N jobs drained by claim + record on one connection each, as the daemon does, after the
// jobs table was analyzed in each state a production table passes through. Prints the claim's plan
// (EXPLAIN ANALYZE of one claim, rolled back) and the drain rate per state.
//
//   npx tsc -p tsconfig.json && node dist/bench/production/jobs-claim-stale.js [--jobs 20000] [--claim 10] [--runs 2]
//
// DATABASE_URL: a server where it may create a database; without it an embedded PostgreSQL (with
// autovacuum on) is started. The machine is shared: rates are noisy, compare states within a run.
import { parseArgs } from 'node:util';
import { openServer } from '../db.js';
import { migrate } from '../../src/db/migrate.js';
import { createClaimPool, createPool } from '../../src/db/pool.js';
import { silentLogger } from '../../src/log.js';
import { CLAIM_SQL, Claimer } from '../../src/queue/claimer.js';
import { Recorder } from '../../src/queue/recorder.js';

const { values: args } = parseArgs({ options: { jobs: { type: 'string', default: '20000' }, claim: { type: 'string', default: '10' }, runs: { type: 'string', default: '2' }, plans: { type: 'boolean', default: false } } });
const jobs = Number(args.jobs);
const claimSize = Number(args.claim);
const runs = Number(args.runs);

type State = 'never analyzed' | 'analyzed empty' | 'analyzed after a drained burst' | 'fresh';
const STATES: State[] = ['never analyzed', 'analyzed empty', 'analyzed after a drained burst', 'fresh'];

async function main(): Promise<void> {
  const server = await openServer();
  const name = await server.createDatabase('jobs_claim_stale');
  const url = server.urlFor(name);
  const log = silentLogger();
  const pool = createPool({ connectionString: url, max: 4, applicationName: 'bq-bench-jobs-claim', log });
  const claimPool = createClaimPool({ connectionString: url, max: 2, applicationName: 'bq-bench-jobs-claim claims', log });
  const claimer = new Claimer(claimPool, 'bench', ['broadcasts'], ['noop']);
  const recorder = new Recorder(pool, 'bench', log);
  try {
    await migrate(pool, log);
    console.log(`PostgreSQL ${server.version} (${server.origin}); bursts of ${jobs}, claims of ${claimSize}`);
    const burst = () => pool.query(`INSERT INTO broadcast_queue_jobs (job_type, payload) SELECT 'noop', jsonb_build_object('seq', g) FROM generate_series(1, $1::int) g`, [jobs]);
    const drain = async (): Promise<number> => {
      const t0 = performance.now();
      let done = 0;
      // Like the worker pool at concurrency claimSize: claim what is free, record, claim again.
      const lane = async () => {
        for (;;) {
          const claimed = await claimer.claim(claimSize);
          if (claimed.length === 0) return;
          await Promise.all(claimed.map((job) => recorder.record({ jobId: job.jobId, attempt: job.attempt, claimedAt: job.claimedAt, outcome: { kind: 'completed', result: null } })));
          done += claimed.length;
        }
      };
      await Promise.all([lane(), lane()]);
      if (done !== jobs) throw new Error(`drained ${done} of ${jobs}`);
      return (jobs / (performance.now() - t0)) * 1000;
    };
    const rates: Record<string, number[]> = {};
    for (let run = 0; run < runs; run++) {
      for (const state of STATES) {
        await pool.query('TRUNCATE broadcast_queue_jobs');
        if (state === 'analyzed empty') await pool.query('ANALYZE broadcast_queue_jobs');
        if (state === 'analyzed after a drained burst') {
          await burst();
          await drain();
          await pool.query('ANALYZE broadcast_queue_jobs');
        }
        await burst();
        if (state === 'fresh') await pool.query('ANALYZE broadcast_queue_jobs');
        if (run === 0 || args.plans) {
          const client = await pool.connect();
          try {
            await client.query('BEGIN');
            const { rows } = await client.query(`EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) ${CLAIM_SQL}`, [['broadcasts'], ['noop'], claimSize, 'bench']);
            console.log(`\n### claim of ${claimSize}, ${state}\n${rows.map((r) => r['QUERY PLAN']).join('\n')}`);
          } finally {
            await client.query('ROLLBACK');
            client.release();
          }
        }
        const rate = await drain();
        (rates[state] ??= []).push(rate);
        console.log(`run ${run + 1}, ${state}: ${rate.toFixed(0)} jobs/s`);
      }
    }
    console.log('\n| state | jobs/s (each run) |\n|---|---|');
    for (const state of STATES) console.log(`| ${state} | ${rates[state]!.map((r) => r.toFixed(0)).join(', ')} |`);
  } finally {
    recorder.close();
    await claimPool.end();
    await pool.end();
    await server.close();
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
