// Issue 17: where PostgreSQL's CPU per job goes in a drain. A burst of no-op jobs is claimed and
// completed in batches through the daemon's own Claimer and completion statement (RECORD_SQL), each on a connection of its
// own, and the on-CPU time of each backend (/proc/<pid>/schedstat, nanoseconds) is divided by the
// jobs: µs per job for the claim and for the completion. Variants change one thing in a fresh
// copy of the migrated database (a trigger disabled, an index dropped) and run in turn, each
// round, so that their difference from 'base' is what that thing costs.
//
//   npx tsc -p tsconfig.json && node dist/bench/production/write-cost.js [--jobs 20000] [--batch 250]
//     [--rounds 3] [--variants base,no-count-updated,...]
//
// Needs the server on this machine (the embedded one, or a local DATABASE_URL whose backends
// this user may read in /proc).
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { openServer } from '../db.js';
import { migrate } from '../../src/db/migrate.js';
import { createClaimPool, createPool, type Pool } from '../../src/db/pool.js';
import { silentLogger } from '../../src/log.js';
import { Claimer } from '../../src/queue/claimer.js';
import { RECORD_SQL, recordParams } from '../../src/queue/recorder.js';

// The completion statement as it was before this bench found its plan reading every pending job.
const OLD_GUARD = `   WHERE j.job_id = o.job_id
     AND j.attempts = o.attempt
     AND j.started_at = o.claimed_at
     AND ((j.status = 'processing' AND j.locked_by = $8)
          OR (j.status = 'pending' AND j.locked_by IS NULL
              AND j.errors -> -1 ->> 'rescued' = 'true' AND j.errors -> -1 ->> 'daemon' = $8))
  RETURNING j.job_id`;
const OLD_RECORD_SQL = RECORD_SQL.slice(0, RECORD_SQL.indexOf('   WHERE ')) + OLD_GUARD;

/** Completion statements other than the Recorder's (RECORD_SQL, unnamed), by variant; `named` prepares it once per connection. */
const RECORDS: Record<string, { text: string; named?: boolean }> = {
  'old-record-sql': { text: OLD_RECORD_SQL },
  'named-record-sql': { text: RECORD_SQL, named: true },
  // The same statement inside a PL/pgSQL function, whose plan each session keeps (works through a
  // transaction-pooling PgBouncer, where a named statement does not).
  'function-record': { text: 'SELECT job_id FROM bench_record($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) AS r(job_id)' },
  // What a statement that only completes (no retry, snooze or failure to consider) would save.
  'completed-only-sql': { text: `
  UPDATE broadcast_queue_jobs j
     SET status = 'completed', result = o.result, locked_by = NULL, finished_at = now(), updated_at = now()
    FROM unnest($1::bigint[], $2::int[], $5::jsonb[], $9::timestamptz[]) AS o(job_id, attempt, result, claimed_at)
   WHERE j.job_id = ANY (ARRAY(SELECT unnest($1::bigint[]))) AND j.job_id = o.job_id AND j.attempts = o.attempt
     AND j.started_at = o.claimed_at AND j.status = 'processing' AND j.locked_by = $8 AND $3::text[] IS NOT NULL
     AND $4::float8[] IS NOT NULL AND $6::text[] IS NOT NULL AND $7::bool[] IS NOT NULL AND $10::text[] IS NOT NULL
  RETURNING j.job_id` },
};

/** What each variant changes in its copy of the database. */
const VARIANTS: Record<string, string> = {
  'old-record-sql': '',
  'named-record-sql': '',
  'function-record': `CREATE FUNCTION bench_record(bigint[], int[], text[], float8[], jsonb[], text[], bool[], text, timestamptz[], text[])
RETURNS SETOF bigint LANGUAGE plpgsql AS $fn$ BEGIN RETURN QUERY ${RECORD_SQL}; END $fn$`,
  'completed-only-sql': '',
  base: '',
  'no-count-updated': 'ALTER TABLE broadcast_queue_jobs DISABLE TRIGGER _200_count_updated',
  'no-dependents-resolved': 'ALTER TABLE broadcast_queue_jobs DISABLE TRIGGER _300_dependents_resolved',
  'no-update-statement-triggers': 'ALTER TABLE broadcast_queue_jobs DISABLE TRIGGER _200_count_updated; ALTER TABLE broadcast_queue_jobs DISABLE TRIGGER _300_dependents_resolved',
  'no-update-row-triggers': ['_100_dependencies_checked_again', '_100_dependencies_fixed', '_400_paused_job_resumed', '_900_notify_due_again'].map((t) => `ALTER TABLE broadcast_queue_jobs DISABLE TRIGGER ${t}`).join('; '),
  'no-triggers': 'ALTER TABLE broadcast_queue_jobs DISABLE TRIGGER USER',
  'no-finished-idx': 'DROP INDEX broadcast_queue_jobs_finished_idx',
  'no-processing-idx': 'DROP INDEX broadcast_queue_jobs_processing_idx',
  'no-job-key-idx': 'DROP INDEX broadcast_queue_jobs_job_key_unfinished_idx',
  'no-waiting-idxs': 'DROP INDEX broadcast_queue_jobs_waiting_idx; DROP INDEX broadcast_queue_jobs_waiting_on_idx',
  'no-secondary-idxs': 'DROP INDEX broadcast_queue_jobs_finished_idx; DROP INDEX broadcast_queue_jobs_processing_idx; DROP INDEX broadcast_queue_jobs_job_key_unfinished_idx; DROP INDEX broadcast_queue_jobs_waiting_idx; DROP INDEX broadcast_queue_jobs_waiting_on_idx',
  'no-checks': `DO $$ DECLARE c text; BEGIN FOR c IN SELECT conname FROM pg_constraint WHERE conrelid = 'broadcast_queue_jobs'::regclass AND contype = 'c' LOOP EXECUTE format('ALTER TABLE broadcast_queue_jobs DROP CONSTRAINT %I', c); END LOOP; END $$`,
  'no-text-checks': 'ALTER TABLE broadcast_queue_jobs DROP CONSTRAINT broadcast_queue_jobs_queue_not_blank, DROP CONSTRAINT broadcast_queue_jobs_job_type_not_blank',
  'no-payload-checks': 'ALTER TABLE broadcast_queue_jobs DROP CONSTRAINT broadcast_queue_jobs_payload_is_object, DROP CONSTRAINT broadcast_queue_jobs_payload_at_most_32_mib_use_subscribers',
  // The count trigger returning at once when the statement finished or un-finished no job (a claim).
  'count-early-exit': `CREATE OR REPLACE FUNCTION broadcast_queue_count_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM new_rows WHERE status IN ('completed', 'failed', 'cancelled'))
     AND NOT EXISTS (SELECT 1 FROM old_rows WHERE status IN ('completed', 'failed', 'cancelled')) THEN
    RETURN NULL;
  END IF;
  WITH change AS (
    SELECT queue, job_type, status, attempts > 1 AS retried, finished_at, started_at, 1 AS sign
      FROM new_rows WHERE status IN ('completed', 'failed', 'cancelled')
    UNION ALL
    SELECT queue, job_type, status, attempts > 1, finished_at, started_at, -1
      FROM old_rows WHERE status IN ('completed', 'failed', 'cancelled')
  ), counted AS (
    INSERT INTO broadcast_queue_job_counts (queue, job_type, status, retried, jobs)
    SELECT queue, job_type, status, retried, sum(sign) FROM change GROUP BY 1, 2, 3, 4 HAVING sum(sign) <> 0
  )
  INSERT INTO broadcast_queue_job_finishes (minute, job_type, status, jobs, duration_seconds)
  SELECT date_trunc('minute', finished_at), job_type, status, sum(sign),
         COALESCE(sum(sign * extract(epoch FROM finished_at - started_at)), 0)
    FROM change WHERE status IN ('completed', 'failed') AND finished_at > now() - interval '25 hours'
   GROUP BY 1, 2, 3 HAVING sum(sign) <> 0 OR COALESCE(sum(sign * extract(epoch FROM finished_at - started_at)), 0) <> 0;
  RETURN NULL;
END $$`,
  'fillfactor-50': 'ALTER TABLE broadcast_queue_jobs SET (fillfactor = 50)',
  'fillfactor-80': 'ALTER TABLE broadcast_queue_jobs SET (fillfactor = 80)',
};

const { values: args } = parseArgs({
  options: {
    jobs: { type: 'string', default: '20000' },
    batch: { type: 'string', default: '250' },
    rounds: { type: 'string', default: '3' },
    variants: { type: 'string', default: Object.keys(VARIANTS).join(',') },
  },
});
const jobs = Number(args.jobs);
const batch = Number(args.batch);

const onCpuNs = (pid: number) => Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);
const backendPid = async (pool: Pool) => (await pool.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;

interface Cost { insert: number; claim: number; complete: number }

async function drain(url: string, setup: string, record: { text: string; named?: boolean }): Promise<Cost> {
  const options = { connectionString: url, max: 1, log: silentLogger(), idleTimeoutMs: 600_000 };
  const admin = createPool({ ...options, applicationName: 'bq-bench-write-cost' });
  const claims = createClaimPool({ ...options, applicationName: 'bq-bench-write-cost-claim' });
  const writes = createPool({ ...options, applicationName: 'bq-bench-write-cost-record' });
  try {
    if (setup) await admin.query(setup);
    const [adminPid, claimPid, writePid] = [await backendPid(admin), await backendPid(claims), await backendPid(writes)];
    let t = onCpuNs(adminPid);
    await admin.query(`INSERT INTO broadcast_queue_jobs (job_type) SELECT 'noop' FROM generate_series(1, $1::int)`, [jobs]);
    const insert = onCpuNs(adminPid) - t;
    const claimer = new Claimer(claims, 'bench', ['broadcasts'], ['noop']);
    const [c0, w0] = [onCpuNs(claimPid), onCpuNs(writePid)];
    let done = 0;
    for (;;) {
      const claimed = await claimer.claim(batch);
      if (claimed.length === 0) break;
      const values = recordParams(claimed.map((job) => ({ jobId: job.jobId, attempt: job.attempt, claimedAt: job.claimedAt, outcome: { kind: 'completed', result: null } })), 'bench');
      done += (await writes.query(record.named ? { name: 'bench_record', text: record.text, values } : { text: record.text, values })).rowCount ?? 0;
    }
    if (done !== jobs) throw new Error(`completed ${done} of ${jobs}`);
    const counted = (await admin.query(`SELECT COALESCE(sum(jobs), 0)::int AS n FROM broadcast_queue_job_counts WHERE status = 'completed'`)).rows[0].n;
    if (!setup.includes('DISABLE TRIGGER') && counted !== jobs) throw new Error(`counts say ${counted} completed, not ${jobs}`);
    const us = (ns: number) => ns / 1000 / jobs;
    return { insert: us(insert), claim: us(onCpuNs(claimPid) - c0), complete: us(onCpuNs(writePid) - w0) };
  } finally {
    await Promise.all([admin.end(), claims.end(), writes.end()]);
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const server = await openServer();
  try {
    console.log(`PostgreSQL ${server.version}: ${server.origin}; ${jobs} jobs, claims and completions of ${batch}`);
    const template = await server.createDatabase('write_cost_template');
    const setupPool = createPool({ connectionString: server.urlFor(template), max: 1, applicationName: 'bench-setup', log: silentLogger() });
    await migrate(setupPool, silentLogger());
    await setupPool.end();
    const names = args.variants.split(',');
    const results = new Map<string, Cost[]>();
    for (let round = 0; round < Number(args.rounds); round++) {
      for (const name of names) {
        const db = await server.createDatabase(`write_cost_${round}`, template);
        const cost = await drain(server.urlFor(db), VARIANTS[name] ?? name, RECORDS[name] ?? { text: RECORD_SQL });
        await server.dropDatabase(db);
        results.set(name, [...(results.get(name) ?? []), cost]);
        console.log(`round ${round} ${name}: insert ${cost.insert.toFixed(2)}, claim ${cost.claim.toFixed(2)}, complete ${cost.complete.toFixed(2)} µs/job, load ${os.loadavg()[0]!.toFixed(1)}`);
      }
    }
    const base = results.get('base');
    console.log(`\nmedians (µs of PostgreSQL CPU per job)      claim  complete  claim+complete  Δ vs base`);
    for (const [name, costs] of results) {
      const claim = median(costs.map((c) => c.claim));
      const complete = median(costs.map((c) => c.complete));
      const delta = base ? claim + complete - (median(base.map((c) => c.claim)) + median(base.map((c) => c.complete))) : 0;
      console.log(`${name.padEnd(40)} ${claim.toFixed(2).padStart(6)} ${complete.toFixed(2).padStart(9)} ${(claim + complete).toFixed(2).padStart(15)} ${delta.toFixed(2).padStart(10)}`);
    }
  } finally {
    await server.close();
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
