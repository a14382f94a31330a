// What job dependencies (sql/0010_job_dependencies.sql) cost jobs that have none (issue 16: within
// 5 %): a burst of independent jobs claimed in batches and completed through the daemon's own
// Claimer and Recorder, timed from the first claim to the last completion, in modes taken in turn
// each round:
//   off          the dependency triggers disabled (the hot path as it was before the feature);
//   unused       the triggers on, no job depends on anything;
//   in use       the triggers on, and 2,000 jobs wait in the table on 200 open jobs of another
//                workflow (neither is claimed here): the burst is still all independent jobs;
//   with dependents  not independent: one job in ten of the burst has a dependent waiting on it,
//                so those completions release one each. What a completion with dependents costs
//                (pg-boss's 50x was paid by these), reported beside the rule's figures.
// The dependents are another job type, not claimed: only the burst is timed. Rates on a shared
// machine swing 2-3x between rounds, so each round's rate is also divided by the same round's
// 'off', and the share of each completion statement's own execution time spent in the dependency
// triggers (EXPLAIN ANALYZE) is reported too: it does not depend on the load.
import type { Server } from '../db.js';
import { migrate } from '../../src/db/migrate.js';
import { createPool, type Pool } from '../../src/db/pool.js';
import { silentLogger } from '../../src/log.js';
import { Claimer } from '../../src/queue/claimer.js';
import { Recorder } from '../../src/queue/recorder.js';

const TRIGGERS = ['_100_dependencies_checked', '_100_dependencies_checked_again', '_100_dependencies_fixed', '_300_dependents_resolved'];
export const DEPENDENCY_MODES = ['off', 'unused', 'in use', 'with dependents'] as const;
export type DependencyMode = (typeof DEPENDENCY_MODES)[number];

export interface DependencyResults {
  jobs: number;
  batch: number;
  /** jobs/s per round. */
  rates: Record<DependencyMode, number[]>;
  /** Share (0-1) of each measured completion statement spent in the dependency triggers. */
  shares: Record<Exclude<DependencyMode, 'off'>, number[]>;
  /** Dependents released in the 'with dependents' rounds (all of them, or the run throws). */
  released: number;
}

async function fill(pool: Pool, mode: DependencyMode, jobs: number): Promise<void> {
  await pool.query('TRUNCATE broadcast_queue_jobs');
  await pool.query(`INSERT INTO broadcast_queue_jobs (job_type) SELECT 'send' FROM generate_series(1, $1::int)`, [jobs]);
  if (mode === 'in use') {
    await pool.query(`INSERT INTO broadcast_queue_jobs (job_type) SELECT 'gate' FROM generate_series(1, 200)`);
    await pool.query(`INSERT INTO broadcast_queue_jobs (job_type, depends_on) SELECT 'after', ARRAY[job_id] FROM broadcast_queue_jobs, generate_series(1, 10) WHERE job_type = 'gate'`);
  }
  if (mode === 'with dependents') {
    await pool.query(`INSERT INTO broadcast_queue_jobs (job_type, depends_on) SELECT 'after', ARRAY[job_id] FROM broadcast_queue_jobs WHERE job_type = 'send' AND job_id % 10 = 0`);
  }
  await pool.query('VACUUM ANALYZE broadcast_queue_jobs');
}

export async function measureDependencyCost(server: Server, plan: { jobs: number; batch: number; rounds: number }, progress: (message: string) => void = () => undefined): Promise<DependencyResults> {
  const { jobs, batch } = plan;
  const name = await server.createDatabase('dependency_cost');
  const pool = createPool({ connectionString: server.urlFor(name), max: 4, applicationName: 'bq-bench-dependency-cost', log: silentLogger() });
  try {
    await migrate(pool, silentLogger());
    const rates: DependencyResults['rates'] = { off: [], unused: [], 'in use': [], 'with dependents': [] };
    let released = 0;
    for (let round = 0; round < plan.rounds; round++) {
      for (const mode of DEPENDENCY_MODES) {
        progress(`dependencies: ${mode}, round ${round + 1} of ${plan.rounds}`);
        for (const t of TRIGGERS) await pool.query(`ALTER TABLE broadcast_queue_jobs ${mode === 'off' ? 'DISABLE' : 'ENABLE'} TRIGGER ${t}`);
        await fill(pool, mode, jobs);
        const claimer = new Claimer(pool, 'bench', ['broadcasts'], ['send']);
        const recorder = new Recorder(pool, 'bench', silentLogger());
        const started = performance.now();
        for (;;) {
          const claimed = await claimer.claim(batch);
          if (claimed.length === 0) break;
          await Promise.all(claimed.map((job) => recorder.record({ jobId: job.jobId, attempt: job.attempt, claimedAt: job.claimedAt, outcome: { kind: 'completed', result: null } })));
        }
        rates[mode].push(jobs / ((performance.now() - started) / 1000));
        recorder.close();
        if (mode === 'with dependents') {
          const { rows } = await pool.query(`SELECT count(*) FILTER (WHERE status = 'pending')::int AS pending, count(*)::int AS total FROM broadcast_queue_jobs WHERE job_type = 'after'`);
          if (rows[0].pending !== rows[0].total) throw new Error(`only ${rows[0].pending} of ${rows[0].total} dependents were released`);
          released += rows[0].pending;
        }
      }
    }
    for (const t of TRIGGERS) await pool.query(`ALTER TABLE broadcast_queue_jobs ENABLE TRIGGER ${t}`);
    const shares: DependencyResults['shares'] = { unused: [], 'in use': [], 'with dependents': [] };
    for (const mode of ['unused', 'in use', 'with dependents'] as const) {
      progress(`dependencies: trigger share, ${mode}`);
      await fill(pool, mode, jobs);
      const { rows: ids } = await pool.query(`SELECT job_id FROM broadcast_queue_jobs WHERE job_type = 'send' ORDER BY job_id`);
      // The first statements compile and plan the trigger function: left out.
      for (let at = 0, n = 0; at + batch <= ids.length && n < 40; at += batch, n++) {
        const { rows } = await pool.query(
          `EXPLAIN (ANALYZE, FORMAT JSON) UPDATE broadcast_queue_jobs SET status = 'completed', finished_at = now(), result = 'null'
            WHERE job_id = ANY ($1::bigint[])`,
          [ids.slice(at, at + batch).map((r) => r.job_id)],
        );
        const explained = rows[0]['QUERY PLAN'][0];
        const spent = (explained.Triggers ?? []).filter((t: any) => TRIGGERS.includes(t['Trigger Name'])).reduce((sum: number, t: any) => sum + t.Time, 0);
        if (n >= 5) shares[mode].push(spent / explained['Execution Time']);
      }
    }
    return { jobs, batch, rates, shares, released };
  } finally {
    await pool.end();
    await server.dropDatabase(name).catch(() => undefined);
  }
}
