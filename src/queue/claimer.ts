import type { Pool } from '../db/pool.js';

/** What a handler receives; the names are part of the library API (DESIGN.md). */
export interface Job<Payload = Record<string, unknown>> {
  jobId: number;
  queue: string;
  jobType: string;
  payload: Payload;
  /** 1 on the first run. */
  attempt: number;
  maxAttempts: number;
  runAt: Date;
  priority: number;
  jobKey: string | null;
  createdAt: Date;
  /**
   * This run's claim: the job's started_at as PostgreSQL wrote it (text keeps the microseconds).
   * The outcome is written only while the job still carries it (queue/recorder.ts).
   */
  claimedAt: string;
  /**
   * The jobs named in depends_on, in that order, with what each returned: every one has finished
   * when this job runs (completed, or failed/cancelled for a job that opted to run anyway with
   * on_dependency_failure = 'run'). Empty for a job without dependencies. A dependency deleted by
   * the cleanup (BQ_CLEANUP_DAYS after it finished) is left out.
   */
  dependencies: readonly DependencyResult[];
}

export interface DependencyResult {
  jobId: number;
  jobType: string;
  status: string;
  result: unknown;
}

// What a handler gets of a claimed row. claimed_at is started_at in UTC with microseconds, the
// form the insert trigger's hand-over uses too (sql/0025), so that a run is known by the same key
// however the daemon came to hold it.
const JOB_COLUMNS = `
  j.job_id, j.queue, j.job_type, j.payload, j.attempts, j.max_attempts, j.priority, j.job_key,
  CASE WHEN j.depends_on IS NOT NULL THEN (
    SELECT jsonb_agg(jsonb_build_object('jobId', d.job_id, 'jobType', d.job_type, 'status', d.status, 'result', d.result)
                     ORDER BY array_position(j.depends_on, d.job_id))
      FROM broadcast_queue_jobs d WHERE d.job_id = ANY (j.depends_on)) END AS dependencies,
  (extract(epoch FROM j.run_at) * 1000)::float8 AS run_at_ms,
  (extract(epoch FROM j.created_at) * 1000)::float8 AS created_at_ms,
  to_char(j.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS claimed_at`;

// Claims due jobs in priority order. SKIP LOCKED lets several daemons claim side by side without
// waiting on each other's row locks; the attempt is counted here, at claim, so a job that kills
// its daemon still uses up attempts and cannot loop forever. One LATERAL scan per queue and job
// type keeps the claim index's order usable and never walks past jobs this daemon cannot run:
// with `queue = ANY(...)` PostgreSQL sorted every pending row first (6.9 ms against 0.14 ms at
// 20k pending), and with job_type only filtered, a claim walked a 200k backlog of another type
// (24 ms; sql/0003). That index is the only one the claim can read pending jobs through (sql/0008)
// and its order is the ORDER BY, so the scan stops after $3 rows whatever the statistics say: with
// a second, narrower one, a table analyzed while drained made the planner read and sort the whole
// burst for every claim (0.3× the rate). The UPDATE finds the picked rows by primary key through
// an array: joined to the CTE, PostgreSQL hashed the whole table instead (a seq scan of every kept
// job, 4.8 of 7.5 ms for a 250-job claim among 20k rows).
// The results of a job's dependencies (Job.dependencies) come back with it, in the same statement:
// a second query after the claim could fail and leave claimed jobs nobody runs. Only the RETURNING
// list reads them, so which rows are picked, and how, is unchanged; the CASE keeps the subquery
// from running for a job without dependencies.
// A claim also withdraws this daemon's advertisement of idle slots (sql/0025_idle_slots.sql), in
// the same statement so that it costs no round trip: claimed slots must not also be offered to
// the insert trigger. One an inserter holds right now is skipped, not waited for; that insert may
// still hand this daemon a few jobs, which wait for a slot like prefetched ones.
export const CLAIM_SQL = `
  WITH withdrawn AS (
    DELETE FROM broadcast_queue_idle_slots
     WHERE daemon_id IN (SELECT daemon_id FROM broadcast_queue_idle_slots WHERE daemon_id = $4 FOR UPDATE SKIP LOCKED)
  ), picked AS (
    SELECT due.job_id
      FROM unnest($1::text[]) AS q(name),
           unnest($2::text[]) AS t(name),
           LATERAL (SELECT job_id, priority, run_at
                      FROM broadcast_queue_jobs
                     WHERE status = 'pending'
                       AND queue = q.name
                       AND job_type = t.name
                       AND run_at <= now()
                     ORDER BY priority DESC, run_at, job_id
                     LIMIT $3
                       FOR UPDATE SKIP LOCKED) due
     ORDER BY due.priority DESC, due.run_at, due.job_id
     LIMIT $3
  )
  UPDATE broadcast_queue_jobs j
     SET status = 'processing', attempts = j.attempts + 1, locked_by = $4,
         started_at = now(), finished_at = NULL, updated_at = now()
   WHERE j.job_id = ANY (ARRAY(SELECT job_id FROM picked))
  RETURNING ${JOB_COLUMNS}`;

// Jobs this daemon holds in the database: after its listener reconnects, a job the insert trigger
// handed over while it was away has no notification coming (Scheduler.adoptOrphans).
export const HELD_SQL = `
  SELECT ${JOB_COLUMNS} FROM broadcast_queue_jobs j WHERE j.status = 'processing' AND j.locked_by = $1`;

// Milliseconds until the earliest pending job this daemon could run, on the database's clock; zero
// or less when one is due already. Due jobs count: a job that became due between the claim and
// this query was in neither when this said `run_at > now()`, and waited for the sweep (issue 10).
// A due job that the claim skipped because another claimer held it shows up here too; the
// scheduler re-claims at once and backs off if it keeps seeing one (see Scheduler.armForNextRun).
// It reads the claim index (sql/0008 dropped the run_at index it used, which stale statistics
// could move the claim onto), one entry per priority: within a priority the index is in
// run_at order, so the earliest job of each priority is the first entry after the previous
// priority's. A few probes however many jobs wait, and no estimate to get wrong.
export const NEXT_RUN_SQL = `
  WITH RECURSIVE earliest AS (
    SELECT q.name AS queue, t.name AS job_type, first.priority, first.run_at
      FROM unnest($1::text[]) AS q(name),
           unnest($2::text[]) AS t(name),
           LATERAL (SELECT priority, run_at
                      FROM broadcast_queue_jobs
                     WHERE status = 'pending' AND queue = q.name AND job_type = t.name
                     ORDER BY priority DESC, run_at
                     LIMIT 1) first
    UNION ALL
    SELECT e.queue, e.job_type, next.priority, next.run_at
      FROM earliest e,
           LATERAL (SELECT priority, run_at
                      FROM broadcast_queue_jobs
                     WHERE status = 'pending' AND queue = e.queue AND job_type = e.job_type
                       AND priority < e.priority
                     ORDER BY priority DESC, run_at
                     LIMIT 1) next
  )
  SELECT ceil(extract(epoch FROM (min(run_at) - now())) * 1000)::float8 AS delay_ms FROM earliest`;

/**
 * Claims run on a pool of their own whose sessions commit asynchronously (see createClaimPool):
 * a claim then costs no WAL flush, which is most of its round trip on a durable server.
 */
export class Claimer {
  constructor(
    private readonly pool: Pool,
    private readonly daemonId: string,
    private readonly queues: string[],
    private jobTypes: string[],
  ) {}

  setJobTypes(jobTypes: string[]): void {
    this.jobTypes = jobTypes;
  }

  async claim(limit: number): Promise<Job[]> {
    if (limit <= 0 || this.jobTypes.length === 0) return [];
    // Named, so each connection parses and plans it once rather than on every claim.
    const { rows } = await this.pool.query({ name: 'broadcast_queue_claim', text: CLAIM_SQL, values: [this.queues, this.jobTypes, limit, this.daemonId] });
    return jobsOf(rows);
  }

  /** Every job the database shows as held by this daemon, in claim order. */
  async held(): Promise<Job[]> {
    return jobsOf((await this.pool.query(HELD_SQL, [this.daemonId])).rows);
  }

  /** Delay until the earliest pending job (zero or less: due now), or null when there is none. */
  async nextRunDelayMs(): Promise<number | null> {
    if (this.jobTypes.length === 0) return null;
    const { rows } = await this.pool.query(NEXT_RUN_SQL, [this.queues, this.jobTypes]);
    return rows[0].delay_ms ?? null;
  }
}

/** Rows of JOB_COLUMNS as handlers see them. */
function jobsOf(rows: any[]): Job[] {
  // UPDATE … RETURNING gives no order; keep the claim's priority order for dispatch.
  rows.sort((a, b) => b.priority - a.priority || a.run_at_ms - b.run_at_ms || a.job_id - b.job_id);
  return rows.map((row) => ({
    jobId: row.job_id,
    queue: row.queue,
    jobType: row.job_type,
    payload: row.payload,
    attempt: row.attempts,
    maxAttempts: row.max_attempts,
    runAt: new Date(row.run_at_ms),
    priority: row.priority,
    jobKey: row.job_key,
    createdAt: new Date(row.created_at_ms),
    claimedAt: row.claimed_at,
    dependencies: row.dependencies ?? [],
  }));
}
