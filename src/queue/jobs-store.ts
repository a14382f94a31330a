// Every statement the admin API and bqctl run on broadcast_queue_jobs rows, with its one row type
// and mapper (the counts over them are in job-counts.ts). Values are passed as $n parameters only.
// A row keeps the table's column names: it is the record the admin API, `bqctl --json` and psql all
// show, so none of them renames a field (Dates stay Dates, bigints are numbers: see db/pool.ts).
import type { Pool, PoolClient } from '../db/pool.js';
import type { ReasonCode } from '../errors.js';

/** 'waiting': some job named in depends_on has not finished yet (sql/0010_job_dependencies.sql). */
export type JobStatus = 'waiting' | 'pending' | 'processing' | 'completed' | 'failed' | 'cancelled';

/** Every status, in the order a job moves through them. */
export const JOB_STATUSES: readonly JobStatus[] = ['waiting', 'pending', 'processing', 'completed', 'failed', 'cancelled'];

/** The job types the Telegram side of the daemon runs (halted together; /broadcasts/failed lists only these). */
export const TELEGRAM_JOB_TYPES: readonly string[] = ['broadcast', 'send'];
/** The broadcast_queue_jobs_max_attempts_between_1_and_100 constraint. */
const MAX_ATTEMPTS_LIMIT = 100;

/** One row of broadcast_queue_jobs, under its column names and in their order. */
export interface JobRow {
  job_id: number;
  queue: string;
  job_type: string;
  payload: Record<string, unknown>;
  priority: number;
  run_at: Date;
  max_attempts: number;
  job_key: string | null;
  status: JobStatus;
  attempts: number;
  last_error: string | null;
  /** Why the last run failed, was retried or snoozed: one of REASON_CODES (errors.ts); null before migration 0017. */
  last_error_reason: ReasonCode | null;
  errors: unknown[];
  result: unknown;
  locked_by: string | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  updated_at: Date;
  /** The jobs that must complete before this one runs (null: none). */
  depends_on: number[] | null;
  /** What a failed or cancelled dependency does to this job: cancel it (the default) or let it run. */
  on_dependency_failure: 'cancel' | 'run';
  /** Of depends_on, the jobs that have not finished yet: why a 'waiting' job waits. */
  open_dependencies: number[] | null;
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
          status, attempts, left(last_error, ${ERROR_CHARS}) AS last_error, last_error_reason, errors, broadcast_queue_brief(result, ${bytes}) AS result,
          locked_by, created_at, started_at, finished_at, updated_at, depends_on, on_dependency_failure,
          broadcast_queue_open_dependencies(depends_on) AS open_dependencies`;
}
export const JOB_COLUMNS = jobColumns();

/** The one mapper: a row read with jobColumns() as a JobRow (and nothing else the statement returned). */
export function jobRow(r: Record<string, any>): JobRow {
  return {
    job_id: r.job_id, queue: r.queue, job_type: r.job_type, payload: r.payload, priority: r.priority, run_at: r.run_at,
    max_attempts: r.max_attempts, job_key: r.job_key, status: r.status, attempts: r.attempts, last_error: r.last_error,
    last_error_reason: r.last_error_reason, errors: r.errors, result: r.result, locked_by: r.locked_by, created_at: r.created_at, started_at: r.started_at,
    finished_at: r.finished_at, updated_at: r.updated_at, depends_on: r.depends_on, on_dependency_failure: r.on_dependency_failure,
    open_dependencies: r.open_dependencies,
  };
}

export async function getJob(pool: Pool | PoolClient, jobId: number): Promise<JobRow | null> {
  const { rows } = await pool.query(`SELECT ${JOB_COLUMNS} FROM broadcast_queue_jobs WHERE job_id = $1`, [jobId]);
  return rows[0] ? jobRow(rows[0]) : null;
}

/** True when the job's last attempt ended in a rescue: its daemon died, perhaps mid-call. */
export async function lastAttemptWasRescued(pool: Pool, jobId: number): Promise<boolean> {
  const { rows } = await pool.query(`SELECT errors -> -1 -> 'rescued' = 'true'::jsonb AS rescued FROM broadcast_queue_jobs WHERE job_id = $1`, [jobId]);
  return rows[0]?.rescued === true;
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

/** The ids of failed jobs matching every given filter, oldest first (bqctl retry --failed). */
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

/** Failed send and broadcast jobs, newest first; payloads and results over LIST_BRIEF_BYTES summarised. */
export async function failedJobs(pool: Pool, limit = 50): Promise<JobRow[]> {
  const { rows } = await pool.query(
    `SELECT ${jobColumns(LIST_BRIEF_BYTES)}
       FROM broadcast_queue_jobs
      WHERE status = 'failed' AND job_type = ANY($1::text[])
      ORDER BY finished_at DESC NULLS LAST, job_id DESC
      LIMIT $2`,
    [[...TELEGRAM_JOB_TYPES], Math.max(1, Math.floor(limit))],
  );
  return rows.map(jobRow);
}

/** What became of one id given to retryJobs or cancelJobs (the API and `bqctl --json` show these names). */
export type JobActionResult =
  | { job_id: number; outcome: 'retried' | 'cancelled'; job: JobRow }
  /** cancelJobs on a running broadcast job: its broadcast was cancelled; the job finishes it. */
  | { job_id: number; outcome: 'broadcast_cancelled'; job: JobRow; broadcast_id: number }
  | { job_id: number; outcome: 'not_found' }
  /** The job is in a state the action does not apply to; `error` says why in a sentence. */
  | { job_id: number; outcome: 'conflict'; status: JobStatus; error: string };

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
    for (const r of rows) done.set(r.job_id, { job_id: r.job_id, outcome: 'retried', job: jobRow(r) });
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
        if (rows[0]) done.set(id, { job_id: id, outcome: 'retried', job: jobRow(rows[0]) });
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
      done.set(r.job_id, { job_id: r.job_id, outcome: 'conflict', status: r.status, error });
    }
  }
  return ids.map((id) => done.get(id) ?? { job_id: id, outcome: 'not_found' });
}

async function keyConflict(pool: Pool, jobId: number): Promise<JobActionResult> {
  const job = await getJob(pool, jobId);
  if (!job) return { job_id: jobId, outcome: 'not_found' };
  return { job_id: jobId, outcome: 'conflict', status: job.status, error: `job ${jobId} cannot be retried: another unfinished job holds its job_key ${JSON.stringify(job.job_key)}` };
}

function isUniqueViolation(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === '23505';
}

/**
 * A pending or waiting job becomes cancelled; null when it is neither (any more). Its dependents
 * are cancelled with it unless they opted out (sql/0010_job_dependencies.sql).
 */
export async function cancelPendingJob(client: PoolClient, jobId: number): Promise<JobRow | null> {
  const { rows } = await client.query(
    `UPDATE broadcast_queue_jobs SET status = 'cancelled', finished_at = now(), locked_by = NULL, updated_at = now()
      WHERE job_id = $1 AND status IN ('pending', 'waiting') RETURNING ${JOB_COLUMNS}`,
    [jobId],
  );
  return rows[0] ? jobRow(rows[0]) : null;
}

export interface JobSearch {
  statuses?: readonly JobStatus[];
  queue?: string;
  jobType?: string;
  createdFrom?: Date;
  createdTo?: Date;
  /** Part of the payload (as JSON text) or of last_error, case-insensitive and literal. */
  text?: string;
  /** Only jobs with a smaller id (the previous page's last id); none for the newest. */
  before?: number;
}

export interface JobSearchPage {
  jobs: JobRow[];
  /** Where the next page starts (its `before`); null when nothing older is left to search. */
  nextBefore: number | null;
  /** The oldest id this page looked at: with few matches, a page ends at its window, not at `limit`. */
  searchedDownTo: number | null;
}

/** Ids one page of a filter over finished jobs looks through at most (bench/production/dashboard-pages.ts). */
export const SEARCH_WINDOW_IDS = 10_000;
const ACTIVE_STATUSES: readonly string[] = ['pending', 'processing'];

/**
 * The WHERE conditions of a search, its values appended to `params`: the list (searchJobs) and the
 * dashboard's bulk actions (broadcast/bulk-control.ts) share them, so an action touches what the list shows.
 */
export function searchConditions(search: JobSearch, params: unknown[]): string[] {
  const where: string[] = [];
  const add = (sql: string, value: unknown) => where.push(sql.replaceAll('?', `$${params.push(value)}`));
  if (search.before !== undefined) add('job_id < ?', search.before);
  if (search.statuses?.length) add('status = ANY(?::text[])', search.statuses);
  if (search.queue !== undefined) add('queue = ?', search.queue);
  if (search.jobType !== undefined) add('job_type = ?', search.jobType);
  if (search.createdFrom !== undefined) add('created_at >= ?', search.createdFrom);
  if (search.createdTo !== undefined) add('created_at < ?', search.createdTo);
  if (search.text !== undefined) {
    add(`(payload::text ILIKE ? OR last_error ILIKE ?)`, `%${search.text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
  }
  return where;
}

/**
 * One page of jobs, newest first, by key (job_id < before), never by OFFSET. A filter that matches
 * one finished job in a million would otherwise walk the whole table for one page; so a page over
 * finished jobs looks through at most SEARCH_WINDOW_IDS ids and says where it stopped, and the next
 * page goes on from there. Pending and processing jobs are few and indexed: those pages need no window.
 */
export async function searchJobs(pool: Pool, search: JobSearch, limit: number): Promise<JobSearchPage> {
  const where: string[] = [];
  const params: unknown[] = [];
  const add = (sql: string, value: unknown) => where.push(sql.replaceAll('?', `$${params.push(value)}`));
  const activeOnly = search.statuses !== undefined && search.statuses.length > 0 && search.statuses.every((s) => ACTIVE_STATUSES.includes(s));
  let windowFloor: number | null = null;
  if (!activeOnly) {
    const top = search.before ?? Number((await pool.query('SELECT COALESCE(max(job_id), 0) + 1 AS top FROM broadcast_queue_jobs')).rows[0].top);
    const bottom = Number((await pool.query('SELECT COALESCE(min(job_id), 0) AS bottom FROM broadcast_queue_jobs')).rows[0].bottom);
    windowFloor = Math.max(bottom, top - SEARCH_WINDOW_IDS);
    add('job_id >= ?', windowFloor);
    if (windowFloor <= bottom) windowFloor = null; // the window reaches the oldest job
  }
  where.push(...searchConditions(search, params));
  const { rows } = await pool.query(
    `SELECT ${jobColumns(LIST_BRIEF_BYTES)} FROM broadcast_queue_jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY job_id DESC LIMIT ${Math.floor(limit) + 1}`,
    params,
  );
  const jobs = rows.slice(0, limit).map(jobRow);
  if (rows.length > limit) return { jobs, nextBefore: jobs[jobs.length - 1]!.job_id, searchedDownTo: jobs[jobs.length - 1]!.job_id };
  return { jobs, nextBefore: windowFloor, searchedDownTo: windowFloor };
}
