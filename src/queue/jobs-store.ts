// Every statement the admin API, /metrics and bqctl run on broadcast_queue_jobs, with its one row
// type and mapper. Values are passed as $n parameters only; functions return plain objects with
// camelCase keys (Dates stay Dates, bigints are numbers: see db/pool.ts).
import type { Pool, PoolClient } from '../db/pool.js';
import { boundedRead } from '../db/bounded-read.js';
import { withTimeout } from '../db/health.js';

export type JobStatus = 'pending' | 'processing' | 'completed' | 'failed' | 'cancelled';

/** The job types the Telegram side of the daemon runs (halted together; /broadcasts/failed lists only these). */
export const TELEGRAM_JOB_TYPES: readonly string[] = ['broadcast', 'send'];
/** The broadcast_queue_jobs_max_attempts_between_1_and_100 constraint. */
const MAX_ATTEMPTS_LIMIT = 100;

/** One row of broadcast_queue_jobs. */
export interface JobRow {
  jobId: number;
  queue: string;
  jobType: string;
  payload: Record<string, unknown>;
  priority: number;
  runAt: Date;
  maxAttempts: number;
  jobKey: string | null;
  status: JobStatus;
  attempts: number;
  lastError: string | null;
  errors: unknown[];
  result: unknown;
  lockedBy: string | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  updatedAt: Date;
}
// Reads are bounded by what a reader can use, not by what a producer stored: a payload may hold a
// million chat ids (20 MB), and eight of them read whole once took the daemon from 97 MB to 1 GB
// RSS. broadcast_queue_brief() (sql/0006) cuts a value down in the database: small values whole,
// big arrays as "<key>_count", so nothing large crosses the wire.
/** Bytes of payload or result shown per job in a list. */
export const LIST_BRIEF_BYTES = 4 * 1024;
/** Bytes of payload, result, message or variants shown for one job or broadcast. */
export const ONE_BRIEF_BYTES = 64 * 1024;
/** Characters of last_error shown (new errors are stored at most this long: queue/recorder.ts). */
export const ERROR_CHARS = 2_000;

/** The job columns with payload and result cut to `briefBytes` each; the same names as the table's. */
export function jobColumns(briefBytes: number = ONE_BRIEF_BYTES): string {
  const bytes = Math.floor(briefBytes);
  return `job_id, queue, job_type, broadcast_queue_brief(payload, ${bytes}) AS payload, priority, run_at, max_attempts, job_key,
          status, attempts, left(last_error, ${ERROR_CHARS}) AS last_error, errors, broadcast_queue_brief(result, ${bytes}) AS result,
          locked_by, created_at, started_at, finished_at, updated_at`;
}
export const JOB_COLUMNS = jobColumns();

export function jobRow(r: any): JobRow {
  return {
    jobId: r.job_id, queue: r.queue, jobType: r.job_type, payload: r.payload, priority: r.priority, runAt: r.run_at,
    maxAttempts: r.max_attempts, jobKey: r.job_key, status: r.status, attempts: r.attempts, lastError: r.last_error,
    errors: r.errors, result: r.result, lockedBy: r.locked_by, createdAt: r.created_at, startedAt: r.started_at,
    finishedAt: r.finished_at, updatedAt: r.updated_at,
  };
}

export async function getJob(pool: Pool | PoolClient, jobId: number): Promise<JobRow | null> {
  const { rows } = await pool.query(`SELECT ${JOB_COLUMNS} FROM broadcast_queue_jobs WHERE job_id = $1`, [jobId]);
  return rows[0] ? jobRow(rows[0]) : null;
}

export interface JobFilter {
  statuses?: readonly string[];
  queue?: string;
  jobType?: string;
  createdSince?: Date;
}

/** Jobs newest first, payloads and results over LIST_BRIEF_BYTES summarised (bqctl list). */
export async function listJobs(pool: Pool, filter: JobFilter, limit: number, offset: number): Promise<JobRow[]> {
  const where: string[] = [];
  const params: unknown[] = [];
  const add = (sql: string, value: unknown) => where.push(sql.replace('?', `$${params.push(value)}`));
  if (filter.statuses !== undefined) add('status = ANY(?::text[])', filter.statuses);
  if (filter.queue !== undefined) add('queue = ?', filter.queue);
  if (filter.jobType !== undefined) add('job_type = ?', filter.jobType);
  if (filter.createdSince !== undefined) add('created_at >= ?', filter.createdSince);
  // job_id is an identity, so its order is creation order and the primary key serves it.
  const { rows } = await pool.query(
    `SELECT ${jobColumns(LIST_BRIEF_BYTES)} FROM broadcast_queue_jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY job_id DESC LIMIT ${Math.floor(limit)} OFFSET ${Math.floor(offset)}`,
    params,
  );
  return rows.map(jobRow);
}

export interface FailedJobFilter {
  queue: string | null;
  jobType: string | null;
  /** Part of last_error, matched case-insensitively and literally (no wildcards). */
  errorContains: string | null;
  finishedSince: Date | null;
}

/** The ids of failed jobs matching every given filter, oldest first (bqctl retry --all-failed). */
export async function failedJobIds(pool: Pool, filter: FailedJobFilter, limit: number): Promise<number[]> {
  const { rows } = await pool.query(
    `SELECT job_id FROM broadcast_queue_jobs
      WHERE status = 'failed'
        AND ($1::text IS NULL OR queue = $1) AND ($2::text IS NULL OR job_type = $2)
        AND ($3::text IS NULL OR last_error ILIKE '%' || replace(replace(replace($3, '\\', '\\\\'), '%', '\\%'), '_', '\\_') || '%')
        AND ($4::timestamptz IS NULL OR finished_at >= $4)
      ORDER BY job_id LIMIT $5`,
    [filter.queue, filter.jobType, filter.errorContains, filter.finishedSince, limit],
  );
  return rows.map((r) => r.job_id);
}

export interface FailedJob {
  jobId: number;
  queue: string;
  jobType: string;
  lastError: string | null;
  attempts: number;
  maxAttempts: number;
  finishedAt: Date | null;
  payload: Record<string, unknown>;
}

/** Failed send and broadcast jobs, newest first; payloads over LIST_BRIEF_BYTES summarised. */
export async function failedJobs(pool: Pool, limit = 50): Promise<FailedJob[]> {
  const { rows } = await pool.query(
    `SELECT job_id, queue, job_type, left(last_error, ${ERROR_CHARS}) AS last_error, attempts, max_attempts, finished_at,
            broadcast_queue_brief(payload, ${LIST_BRIEF_BYTES}) AS payload
       FROM broadcast_queue_jobs
      WHERE status = 'failed' AND job_type = ANY($1::text[])
      ORDER BY finished_at DESC NULLS LAST, job_id DESC
      LIMIT $2`,
    [[...TELEGRAM_JOB_TYPES], Math.max(1, Math.floor(limit))],
  );
  return rows.map((r) => ({ jobId: r.job_id, queue: r.queue, jobType: r.job_type, lastError: r.last_error, attempts: r.attempts, maxAttempts: r.max_attempts, finishedAt: r.finished_at, payload: r.payload }));
}

/** What became of one id given to retryJobs or cancelJobs. */
export type JobActionResult =
  | { jobId: number; outcome: 'retried' | 'cancelled'; job: JobRow }
  /** cancelJobs on a running broadcast job: its broadcast was cancelled; the job finishes it. */
  | { jobId: number; outcome: 'broadcast_cancelled'; job: JobRow; broadcastId: number }
  | { jobId: number; outcome: 'not_found' }
  /** The job is in a state the action does not apply to; `error` says why in a sentence. */
  | { jobId: number; outcome: 'conflict'; status: JobStatus; error: string };

// A failed or cancelled job goes back to pending, due now, with one more attempt allowed. The
// status change fires the _900_notify_due_again trigger, so a daemon wakes for it at once.
const RETRY_SQL = `
  UPDATE broadcast_queue_jobs
     SET status = 'pending', run_at = now(), locked_by = NULL, finished_at = NULL, updated_at = now(),
         max_attempts = LEAST(${MAX_ATTEMPTS_LIMIT}, GREATEST(max_attempts, attempts + 1))
   WHERE job_id = ANY($1::bigint[])
     AND status IN ('failed', 'cancelled')
     AND attempts < ${MAX_ATTEMPTS_LIMIT}
  RETURNING ${JOB_COLUMNS}`;

/**
 * Puts failed or cancelled jobs back to pending, due now, with one more attempt allowed.
 * Returns one result per distinct id, in the order given.
 */
export async function retryJobs(pool: Pool, jobIds: readonly number[]): Promise<JobActionResult[]> {
  const ids = [...new Set(jobIds)];
  const done = new Map<number, JobActionResult>();
  try {
    const { rows } = await pool.query(RETRY_SQL, [ids]);
    for (const r of rows) done.set(r.job_id, { jobId: r.job_id, outcome: 'retried', job: jobRow(r) });
  } catch (error) {
    // One job whose job_key another unfinished job now holds fails the whole statement (the
    // unique index on unfinished keys); retry one at a time so the others still go through.
    if (!isUniqueViolation(error) || ids.length === 1) {
      if (isUniqueViolation(error)) return [await keyConflict(pool, ids[0]!)];
      throw error;
    }
    for (const id of ids) {
      try {
        const { rows } = await pool.query(RETRY_SQL, [[id]]);
        if (rows[0]) done.set(id, { jobId: id, outcome: 'retried', job: jobRow(rows[0]) });
      } catch (inner) {
        if (!isUniqueViolation(inner)) throw inner;
        done.set(id, await keyConflict(pool, id));
      }
    }
  }
  const missing = ids.filter((id) => !done.has(id));
  if (missing.length) {
    const { rows } = await pool.query('SELECT job_id, status, attempts FROM broadcast_queue_jobs WHERE job_id = ANY($1::bigint[])', [missing]);
    for (const r of rows) {
      const error = r.status === 'failed' || r.status === 'cancelled'
        ? `job ${r.job_id} has used all ${MAX_ATTEMPTS_LIMIT} attempts a job may have`
        : `job ${r.job_id} is ${r.status}; only failed or cancelled jobs can be retried`;
      done.set(r.job_id, { jobId: r.job_id, outcome: 'conflict', status: r.status, error });
    }
  }
  return ids.map((id) => done.get(id) ?? { jobId: id, outcome: 'not_found' });
}

async function keyConflict(pool: Pool, jobId: number): Promise<JobActionResult> {
  const job = await getJob(pool, jobId);
  if (!job) return { jobId, outcome: 'not_found' };
  return { jobId, outcome: 'conflict', status: job.status, error: `job ${jobId} cannot be retried: another unfinished job holds its job_key ${JSON.stringify(job.jobKey)}` };
}

function isUniqueViolation(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === '23505';
}

/** A pending job becomes cancelled; null when it is not pending (any more). */
export async function cancelPendingJob(client: PoolClient, jobId: number): Promise<JobRow | null> {
  const { rows } = await client.query(
    `UPDATE broadcast_queue_jobs SET status = 'cancelled', finished_at = now(), locked_by = NULL, updated_at = now()
      WHERE job_id = $1 AND status = 'pending' RETURNING ${JOB_COLUMNS}`,
    [jobId],
  );
  return rows[0] ? jobRow(rows[0]) : null;
}

export interface JobStatistics {
  totalJobs: number;
  byStatus: Record<JobStatus, number>;
  /** Per job type: its total and its count in each status. */
  byJobType: Record<string, { total: number } & Record<JobStatus, number>>;
  completedLastHour: number;
  completedLast24h: number;
  failedLastHour: number;
  failedLast24h: number;
  /** Mean started_at → finished_at of the jobs completed in the last hour; null when none. */
  averageDurationSecondsLastHour: number | null;
  /** Jobs that needed more than one attempt. */
  retriedJobs: number;
}

const emptyByStatus = (): Record<JobStatus, number> => ({ pending: 0, processing: 0, completed: 0, failed: 0, cancelled: 0 });

/**
 * Totals over every job. Active jobs through the partial indexes; finished ones from the counts
 * kept as jobs finish (sql/0007_job_counts.sql), and the windows from per-minute counts, so that
 * nothing here grows with the jobs kept. The windows are counted to the minute: the minute the
 * window starts in counts whole. Run it inside boundedRead: one connection runs them in turn, and
 * the timeout is set on its transaction.
 */
export async function readJobStatistics(pool: PoolClient): Promise<JobStatistics> {
  const [byType, recent, retried] = [
    await pool.query(
      `SELECT job_type, 'pending' AS status, count(*)::int AS n FROM broadcast_queue_jobs WHERE status = 'pending' GROUP BY job_type
       UNION ALL
       SELECT job_type, 'processing', count(*)::int FROM broadcast_queue_jobs WHERE status = 'processing' GROUP BY job_type
       UNION ALL
       SELECT job_type, status, sum(jobs)::int FROM broadcast_queue_job_counts GROUP BY job_type, status HAVING sum(jobs) <> 0`,
    ),
    await pool.query(
      `SELECT COALESCE(sum(jobs) FILTER (WHERE status = 'completed' AND minute >= date_trunc('minute', now() - interval '1 hour')), 0)::int AS completed_1h,
              COALESCE(sum(jobs) FILTER (WHERE status = 'completed'), 0)::int AS completed_24h,
              COALESCE(sum(jobs) FILTER (WHERE status = 'failed' AND minute >= date_trunc('minute', now() - interval '1 hour')), 0)::int AS failed_1h,
              COALESCE(sum(jobs) FILTER (WHERE status = 'failed'), 0)::int AS failed_24h,
              (sum(duration_seconds) FILTER (WHERE status = 'completed' AND minute >= date_trunc('minute', now() - interval '1 hour'))
                / NULLIF(sum(jobs) FILTER (WHERE status = 'completed' AND minute >= date_trunc('minute', now() - interval '1 hour')), 0))::float8 AS avg_seconds_1h
         FROM broadcast_queue_job_finishes
        WHERE minute >= date_trunc('minute', now() - interval '24 hours')`,
    ),
    await pool.query(
      `SELECT (SELECT COALESCE(sum(jobs), 0) FROM broadcast_queue_job_counts WHERE retried)
            + (SELECT count(*) FROM broadcast_queue_jobs WHERE status = 'pending' AND attempts > 1)
            + (SELECT count(*) FROM broadcast_queue_jobs WHERE status = 'processing' AND attempts > 1) AS n`,
    ),
  ];
  const byStatus = emptyByStatus();
  const perType: JobStatistics['byJobType'] = {};
  let totalJobs = 0;
  for (const r of byType.rows) {
    const t = (perType[r.job_type] ??= { total: 0, ...emptyByStatus() });
    t[r.status as JobStatus] = r.n;
    t.total += r.n;
    byStatus[r.status as JobStatus] += r.n;
    totalJobs += r.n;
  }
  const w = recent.rows[0];
  return {
    totalJobs,
    byStatus,
    byJobType: perType,
    completedLastHour: w.completed_1h,
    completedLast24h: w.completed_24h,
    failedLastHour: w.failed_1h,
    failedLast24h: w.failed_24h,
    averageDurationSecondsLastHour: w.avg_seconds_1h,
    retriedJobs: Number(retried.rows[0].n),
  };
}

// Jobs per queue and status, with how many pending ones are due and the age of the oldest due one.
// Pending and processing jobs through their partial indexes, so the cost is what is active;
// finished jobs from the counts kept as they finish (sql/0007_job_counts.sql), not from the rows kept.
export const JOB_COUNTS_SQL = `
  SELECT queue, 'pending' AS status, count(*)::int AS n, count(*) FILTER (WHERE run_at <= now())::int AS due,
         extract(epoch FROM now() - min(run_at) FILTER (WHERE run_at <= now()))::float8 AS oldest_due
    FROM broadcast_queue_jobs WHERE status = 'pending' GROUP BY queue
  UNION ALL
  SELECT queue, 'processing', count(*)::int, 0, NULL FROM broadcast_queue_jobs WHERE status = 'processing' GROUP BY queue
  UNION ALL
  SELECT queue, status, sum(jobs)::int, 0, NULL FROM broadcast_queue_job_counts GROUP BY queue, status HAVING sum(jobs) <> 0`;

export interface JobGaugeSnapshot {
  /** Jobs per queue and status (only the pairs that exist). */
  byState: { queue: string; status: JobStatus; count: number }[];
  /** Per queue with pending jobs: how many are due now, and the age of the oldest due one. */
  pending: { queue: string; due: number; oldestDueSeconds: number | null }[];
}

/** The queue label of jobs in queues the daemon was not configured for. */
export const OTHER_QUEUES_LABEL = 'other';

/**
 * The job counts /metrics exposes as gauges, read at scrape time: active jobs through their partial
 * indexes, finished ones from the kept counts (sql/0007_job_counts.sql). Queues outside
 * `queues` (the daemon's configuration) are summed under OTHER_QUEUES_LABEL, so producers cannot
 * decide how many series exist (20k queue names once made 100,005 series, 7.8 MB per scrape).
 */
export async function jobGauges(pool: Pool, queues: readonly string[], timeoutMs = 2_000): Promise<JobGaugeSnapshot> {
  const { rows } = await boundedRead(pool, (client) => client.query({ ...withTimeout(
    `SELECT CASE WHEN queue = ANY($1::text[]) THEN queue ELSE $2 END AS queue, status, sum(n)::int AS n, sum(due)::int AS due,
            max(oldest_due) AS oldest_due
       FROM (${JOB_COUNTS_SQL}) c
      GROUP BY 1, status HAVING sum(n) <> 0 ORDER BY 1, status`,
    // The server cancels the scan at timeoutMs; this later client-side limit covers a dead connection.
    timeoutMs + 1_000,
  ), values: [queues, OTHER_QUEUES_LABEL] }), timeoutMs);
  return {
    byState: rows.map((r: any) => ({ queue: r.queue, status: r.status, count: r.n })),
    pending: rows.filter((r: any) => r.status === 'pending').map((r: any) => ({ queue: r.queue, due: r.due, oldestDueSeconds: r.oldest_due === null ? null : Math.max(0, r.oldest_due) })),
  };
}
