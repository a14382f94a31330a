// What the finished-job count triggers (sql/0007_job_counts.sql) cost the hot path: a burst of
// jobs inserted, claimed in batches and completed through the daemon's own Claimer and Recorder,
// with the triggers on and with them disabled, alternating rounds.
//
//   npx tsc -p tsconfig.json && node dist/bench/production/count-trigger-cost.js [--jobs 20000] [--batch 250] [--rounds 3]
import { parseArgs } from 'node:util';
import { openServer } from '../db.js';
import { migrate } from '../../src/db/migrate.js';
import { createPool } from '../../src/db/pool.js';
import { silentLogger } from '../../src/log.js';
import { Claimer } from '../../src/queue/claimer.js';
import { Recorder } from '../../src/queue/recorder.js';

const { values: args } = parseArgs({ options: { jobs: { type: 'string', default: '20000' }, batch: { type: 'string', default: '250' }, rounds: { type: 'string', default: '3' } } });
const jobs = Number(args.jobs);
const batch = Number(args.batch);
const TRIGGERS = ['_200_count_inserted', '_200_count_updated', '_200_count_deleted'];

async function main(): Promise<void> {
  const server = await openServer();
  const name = await server.createDatabase('count_trigger_cost');
  const pool = createPool({ connectionString: server.urlFor(name), max: 4, applicationName: 'bq-bench-count-trigger', log: silentLogger() });
  try {
    await migrate(pool, silentLogger());
    console.log(`PostgreSQL ${server.version} (${server.origin}); ${jobs} jobs per round, claims of ${batch}`);
    const results: Record<string, number[]> = { on: [], off: [] };
    for (let round = 0; round < Number(args.rounds); round++) {
      for (const mode of ['on', 'off'] as const) {
        for (const t of TRIGGERS) await pool.query(`ALTER TABLE broadcast_queue_jobs ${mode === 'on' ? 'ENABLE' : 'DISABLE'} TRIGGER ${t}`);
        await pool.query('TRUNCATE broadcast_queue_jobs');
        const started = performance.now();
        await pool.query(`INSERT INTO broadcast_queue_jobs (job_type) SELECT 'send' FROM generate_series(1, $1::int)`, [jobs]);
        const claimer = new Claimer(pool, 'bench', ['broadcasts'], ['send']);
        const recorder = new Recorder(pool, 'bench', silentLogger());
        for (;;) {
          const claimed = await claimer.claim(batch);
          if (claimed.length === 0) break;
          await Promise.all(claimed.map((job) => recorder.record({ jobId: job.jobId, attempt: job.attempt, claimedAt: job.claimedAt, outcome: { kind: 'completed', result: null } })));
        }
        recorder.close();
        results[mode]!.push(jobs / ((performance.now() - started) / 1000));
      }
    }
    for (const t of TRIGGERS) await pool.query(`ALTER TABLE broadcast_queue_jobs ENABLE TRIGGER ${t}`);
    const fmt = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(', ');
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    console.log(`jobs/s with the count triggers: ${fmt(results.on!)} (median ${med(results.on!).toFixed(0)})`);
    console.log(`jobs/s without them:            ${fmt(results.off!)} (median ${med(results.off!).toFixed(0)})`);
    console.log(`ratio: ${(med(results.on!) / med(results.off!)).toFixed(2)}`);
  } finally {
    await pool.end();
    await server.close();
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
