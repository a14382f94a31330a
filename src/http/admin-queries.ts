// Every statement behind the admin API, /metrics and the bqctl commands that act on jobs and
// broadcasts, in one reviewed place. Values are passed as $n parameters only; each function
// returns plain objects with camelCase keys (Dates stay Dates, bigints are numbers: see db/pool.ts).
import type { QueryConfig } from 'pg';
import type { Pool, PoolClient } from '../db/pool.js';
import { boundedRead } from '../db/bounded-read.js';
import { inTransaction } from '../db/transaction.js';

export type JobStatus = 'pending' | 'processing' | 'completed' | 'failed' | 'cancelled';
export type BroadcastStatus = 'draft' | 'queued' | 'sending' | 'paused' | 'completed' | 'cancelled' | 'failed';
export type BroadcastAction = 'pause' | 'resume' | 'cancel';

const FINAL_BROADCAST_STATUSES: readonly BroadcastStatus[] = ['completed', 'cancelled', 'failed'];
/** The job types the Telegram side of the daemon runs; /broadcasts/failed lists only these. */
const TELEGRAM_JOB_TYPES = ['broadcast', 'send'];
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

// An audience of explicit chat_ids can hold 100k numbers; it is shown as a count.
const AUDIENCE_SUMMARY = `
  CASE WHEN jsonb_typeof(audience -> 'chat_ids') = 'array'
       THEN (audience - 'chat_ids') || jsonb_build_object('chat_ids_count', jsonb_array_length(audience -> 'chat_ids'))
       ELSE audience END`;

// Reads are bounded by what a reader can use, not by what a producer stored: a payload may hold a
// million chat ids (20 MB), and eight of them read whole once took the daemon from 97 MB to 1 GB
// RSS. broadcast_queue_brief() (sql/0006) cuts a value down in the database: small values whole,
// big arrays as "<key>_count", so nothing large crosses the wire.
/** Bytes of payload or result shown per job in a list. */
export const LIST_BRIEF_BYTES = 4 * 1024;
/** Bytes of payload, result, message or variants shown for one job or broadcast. */
export const ONE_BRIEF_BYTES = 64 * 1024;
/** Characters of last_error shown (new errors are stored at most this long: queue/recorder.ts). */
const ERROR_CHARS = 2_000;

/** The job columns with payload and result cut to `briefBytes` each; the same names as the table's. */
export function jobColumns(briefBytes: number = ONE_BRIEF_BYTES): string {
  const bytes = Math.floor(briefBytes);
  return `job_id, queue, job_type, broadcast_queue_brief(payload, ${bytes}) AS payload, priority, run_at, max_attempts, job_key,
          status, attempts, left(last_error, ${ERROR_CHARS}) AS last_error, errors, broadcast_queue_brief(result, ${bytes}) AS result,
          locked_by, created_at, started_at, finished_at, updated_at`;
}
const JOB_COLUMNS = jobColumns();

/** The broadcasts columns with message, variants and audience bounded (chat_ids as a count). */
export function broadcastColumns(briefBytes: number = ONE_BRIEF_BYTES): string {
  const bytes = Math.floor(briefBytes);
  return `broadcast_id, title, broadcast_queue_brief(message, ${bytes}) AS message, broadcast_queue_brief(variants, ${bytes}) AS variants,
          broadcast_queue_brief(${AUDIENCE_SUMMARY}, ${bytes}) AS audience, frequency_cap, allow_paid_broadcast, status, total, sent,
          failed, blocked, skipped, unknown, failure_reason, job_id, created_at, started_at, finished_at, updated_at`;
}

function jobRow(r: any): JobRow {
  return {
    jobId: r.job_id, queue: r.queue, jobType: r.job_type, payload: r.payload, priority: r.priority, runAt: r.run_at,
    maxAttempts: r.max_attempts, jobKey: r.job_key, status: r.status, attempts: r.attempts, lastError: r.last_error,
    errors: r.errors, result: r.result, lockedBy: r.locked_by, createdAt: r.created_at, startedAt: r.started_at,
    finishedAt: r.finished_at, updatedAt: r.updated_at,
  };
}

// The broadcast a job drives: its payload's broadcast_id (guarded, so a malformed payload cannot
// make the cast fail), else the broadcasts row that names the job.
const JOB_BROADCAST_ID = `
  COALESCE(CASE WHEN j.payload ->> 'broadcast_id' ~ '^[0-9]{1,15}$' THEN (j.payload ->> 'broadcast_id')::bigint END,
           (SELECT b.broadcast_id FROM broadcasts b WHERE b.job_id = j.job_id ORDER BY b.broadcast_id LIMIT 1))`;

export async function getJob(pool: Pool, jobId: number): Promise<JobRow | null> {
  const { rows } = await pool.query(`SELECT ${JOB_COLUMNS} FROM broadcast_queue_jobs WHERE job_id = $1`, [jobId]);
  return rows[0] ? jobRow(rows[0]) : null;
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
    [TELEGRAM_JOB_TYPES, Math.max(1, Math.floor(limit))],
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

// Cancelling a broadcast. The unfinished broadcast jobs that drive it are locked first (the same
// order as cancelJobs, so the two cannot deadlock each other), which also keeps a pending one from
// being claimed until the transaction ends.
const LOCK_BROADCAST_JOBS_SQL = `
  SELECT j.job_id, j.status
    FROM broadcast_queue_jobs j
   WHERE j.job_type = 'broadcast' AND j.status IN ('pending', 'processing')
     AND (j.job_id = (SELECT b.job_id FROM broadcasts b WHERE b.broadcast_id = $1)
          OR j.payload @> jsonb_build_object('broadcast_id', $1::bigint))
     FOR UPDATE OF j`;
// With no engine running it, the broadcast is final now (finished_at set here); a running engine
// sees 'cancelled' at its next control check, skips the rest itself and sets finished_at.
const CANCEL_BROADCAST_SQL = `
  UPDATE broadcasts
     SET status = 'cancelled', updated_at = now(),
         finished_at = CASE WHEN $3::bool THEN finished_at ELSE COALESCE(finished_at, now()) END
   WHERE broadcast_id = $1 AND NOT (status = ANY($2::text[]))
  RETURNING broadcast_id`;
// Only when no engine runs it: the engine would otherwise find nothing left to send before its
// next control check and record the broadcast as completed.
const SKIP_PENDING_SQL = `
  WITH r AS (UPDATE broadcast_deliveries SET status = 'skipped', outcome = 'cancelled', updated_at = now()
              WHERE broadcast_id = $1 AND status = 'pending' RETURNING 1)
  UPDATE broadcasts SET skipped = skipped + (SELECT count(*) FROM r), updated_at = now()
   WHERE broadcast_id = $1`;

/** Cancels a broadcast that is not final; false if it is final or does not exist. */
async function cancelBroadcastIn(client: PoolClient, broadcastId: number): Promise<boolean> {
  const jobs = await client.query(LOCK_BROADCAST_JOBS_SQL, [broadcastId]);
  const running = jobs.rows.some((j) => j.status === 'processing');
  const { rows } = await client.query(CANCEL_BROADCAST_SQL, [broadcastId, FINAL_BROADCAST_STATUSES, running]);
  if (!rows[0]) return false;
  if (!running) await client.query(SKIP_PENDING_SQL, [broadcastId]);
  return true;
}


/**
 * Cancels jobs. A pending job becomes cancelled (and a broadcast it drives is cancelled with
 * it). A running broadcast job is cancelled through its broadcast: the engine stops at its next
 * control check and the job completes with status 'cancelled' in its result. Any other running
 * or finished job is a conflict. One result per distinct id, in the order given.
 */
export async function cancelJobs(pool: Pool, jobIds: readonly number[]): Promise<JobActionResult[]> {
  const ids = [...new Set(jobIds)];
  return inTransaction(pool, async (client) => {
    const { rows } = await client.query(
      `SELECT j.job_id, j.job_type, j.status, ${JOB_BROADCAST_ID} AS broadcast_id
         FROM broadcast_queue_jobs j WHERE j.job_id = ANY($1::bigint[]) FOR UPDATE`,
      [ids],
    );
    const found = new Map<number, { job_type: string; status: JobStatus; broadcast_id: number | null }>(rows.map((r) => [r.job_id, r]));
    const results: JobActionResult[] = [];
    for (const jobId of ids) {
      const row = found.get(jobId);
      if (!row) {
        results.push({ jobId, outcome: 'not_found' });
        continue;
      }
      const isBroadcast = row.job_type === 'broadcast';
      if (row.status === 'pending') {
        const updated = await client.query(
          `UPDATE broadcast_queue_jobs SET status = 'cancelled', finished_at = now(), locked_by = NULL, updated_at = now()
            WHERE job_id = $1 AND status = 'pending' RETURNING ${JOB_COLUMNS}`,
          [jobId],
        );
        // A paused broadcast's job waits as pending: its broadcast must not stay 'paused' forever.
        if (isBroadcast && row.broadcast_id !== null) await cancelBroadcastIn(client, row.broadcast_id);
        results.push({ jobId, outcome: 'cancelled', job: jobRow(updated.rows[0]) });
      } else if (row.status === 'processing' && isBroadcast && row.broadcast_id !== null && (await cancelBroadcastIn(client, row.broadcast_id))) {
        const job = await client.query(`SELECT ${JOB_COLUMNS} FROM broadcast_queue_jobs WHERE job_id = $1`, [jobId]);
        results.push({ jobId, outcome: 'broadcast_cancelled', job: jobRow(job.rows[0]), broadcastId: row.broadcast_id });
      } else if (row.status === 'processing') {
        results.push({
          jobId, outcome: 'conflict', status: row.status,
          error: isBroadcast ? `job ${jobId} is running and its broadcast is already finishing` : `job ${jobId} is running; cancel its broadcast instead, or wait for it to finish`,
        });
      } else {
        results.push({ jobId, outcome: 'conflict', status: row.status, error: `job ${jobId} is ${row.status}; only pending jobs (and running broadcasts) can be cancelled` });
      }
    }
    return results;
  });
}

/** A broadcasts row with its counts and how far along it is. */
export interface BroadcastProgress {
  broadcastId: number;
  title: string | null;
  status: BroadcastStatus;
  jobId: number | null;
  total: number;
  sent: number;
  failed: number;
  blocked: number;
  skipped: number;
  unknown: number;
  /** Recipients with a final outcome: sent + failed + blocked + skipped + unknown. */
  done: number;
  remaining: number;
  /** done / total, from 0 to 1; 1 for a finished broadcast with no recipients. */
  progress: number;
  /** Messages sent per second over the last 10 seconds. */
  ratePerSecond: number;
  /** remaining / ratePerSecond; null when nothing is being sent or the broadcast is final. */
  etaSeconds: number | null;
  failureReason: string | null;
  allowPaidBroadcast: boolean;
  frequencyCap: number | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  updatedAt: Date;
  /** Only from broadcastProgress(): the message, variants and audience (chat_ids summarised as a count). */
  message?: Record<string, unknown> | null;
  variants?: unknown[] | null;
  audience?: Record<string, unknown>;
}

const RATE_WINDOW_SECONDS = 10;

/** The columns of a progress row; `$<rateParam>` is the rate window in seconds. */
function progressColumns(rateParam: number): string {
  return `
    b.broadcast_id, b.title, b.status, b.job_id, b.total, b.sent, b.failed, b.blocked, b.skipped, b.unknown,
    b.failure_reason, b.allow_paid_broadcast, b.frequency_cap, b.created_at, b.started_at, b.finished_at, b.updated_at,
    (SELECT count(*)::int FROM broadcast_deliveries d
      WHERE d.broadcast_id = b.broadcast_id AND d.status = 'sent'
        AND d.sent_at > now() - $${rateParam}::float8 * interval '1 second') AS recent_sent`;
}

function progressOf(r: any): BroadcastProgress {
  const done = r.sent + r.failed + r.blocked + r.skipped + r.unknown;
  const final = (FINAL_BROADCAST_STATUSES as readonly string[]).includes(r.status);
  const remaining = Math.max(0, r.total - done);
  const ratePerSecond = r.recent_sent / RATE_WINDOW_SECONDS;
  return {
    broadcastId: r.broadcast_id, title: r.title, status: r.status, jobId: r.job_id,
    total: r.total, sent: r.sent, failed: r.failed, blocked: r.blocked, skipped: r.skipped, unknown: r.unknown,
    done, remaining,
    progress: r.total > 0 ? Math.min(1, done / r.total) : final ? 1 : 0,
    ratePerSecond,
    etaSeconds: !final && ratePerSecond > 0 ? Math.ceil(remaining / ratePerSecond) : null,
    failureReason: r.failure_reason, allowPaidBroadcast: r.allow_paid_broadcast, frequencyCap: r.frequency_cap,
    createdAt: r.created_at, startedAt: r.started_at, finishedAt: r.finished_at, updatedAt: r.updated_at,
  };
}

/** One broadcast with its counts, progress, send rate over the last 10 s and ETA; null if unknown. */
export async function broadcastProgress(pool: Pool | PoolClient, broadcastId: number): Promise<BroadcastProgress | null> {
  const { rows } = await pool.query(
    `SELECT ${progressColumns(2)}, broadcast_queue_brief(b.message, ${ONE_BRIEF_BYTES}) AS message,
            broadcast_queue_brief(b.variants, ${ONE_BRIEF_BYTES}) AS variants,
            broadcast_queue_brief(${AUDIENCE_SUMMARY}, ${ONE_BRIEF_BYTES}) AS audience
       FROM broadcasts b WHERE b.broadcast_id = $1`,
    [broadcastId, RATE_WINDOW_SECONDS],
  );
  const r = rows[0];
  if (!r) return null;
  return { ...progressOf(r), message: r.message, variants: r.variants, audience: r.audience };
}

/** Broadcasts being sent or paused, oldest first. */
export async function broadcastsInProgress(pool: Pool): Promise<BroadcastProgress[]> {
  const { rows } = await pool.query(
    `SELECT ${progressColumns(1)} FROM broadcasts b
      WHERE b.status IN ('sending', 'paused')
      ORDER BY b.created_at, b.broadcast_id
      LIMIT 100`,
    [RATE_WINDOW_SECONDS],
  );
  return rows.map(progressOf);
}

export type BroadcastActionResult =
  | { outcome: 'updated'; broadcast: BroadcastProgress }
  | { outcome: 'not_found' }
  | { outcome: 'conflict'; status: BroadcastStatus; error: string };

/** Which statuses each action applies to, and what it sets. */
const TRANSITIONS: Record<BroadcastAction, { from: readonly BroadcastStatus[]; to: BroadcastStatus }> = {
  pause: { from: ['sending', 'queued', 'draft'], to: 'paused' },
  resume: { from: ['paused'], to: 'sending' }, // or back to 'draft' when nothing will send it (resumeBroadcastIn)
  cancel: { from: ['draft', 'queued', 'sending', 'paused'], to: 'cancelled' },
};

/**
 * Pauses (from sending, queued or draft), resumes (from paused, to sending) or cancels (from any
 * status that is not final) a broadcast. A running engine notices within about half a second;
 * resuming wakes a paused broadcast's job at once (the _500_wake_on_resume trigger); cancelling
 * also skips the recipients not yet sent, so the counts add up even when no engine runs it.
 */
export async function setBroadcastStatus(pool: Pool, broadcastId: number, action: BroadcastAction): Promise<BroadcastActionResult> {
  const rule = TRANSITIONS[action];
  if (!rule) throw new TypeError(`unknown broadcast action ${JSON.stringify(action)}; use pause, resume or cancel`);
  return inTransaction(pool, async (client) => {
    let changed: boolean;
    if (action === 'cancel') {
      changed = await cancelBroadcastIn(client, broadcastId);
    } else if (action === 'resume') {
      changed = await resumeBroadcastIn(client, broadcastId);
    } else {
      const { rows } = await client.query(
        `UPDATE broadcasts SET status = $2, updated_at = now() WHERE broadcast_id = $1 AND status = ANY($3::text[]) RETURNING broadcast_id`,
        [broadcastId, rule.to, rule.from],
      );
      changed = rows.length > 0;
    }
    const broadcast = await broadcastProgress(client, broadcastId);
    if (!broadcast) return { outcome: 'not_found' };
    if (!changed) {
      return { outcome: 'conflict', status: broadcast.status, error: `broadcast ${broadcastId} is ${broadcast.status}; ${action} applies only to a broadcast that is ${rule.from.join(', ')}` };
    }
    return { outcome: 'updated', broadcast };
  });
}

// An unfinished job that will drive the broadcast: the one it names, or one enqueued for it by SQL
// that has not run yet (a job names its broadcast only once it runs).
const DRIVING_JOB = `
  SELECT j.job_id FROM broadcast_queue_jobs j
   WHERE j.status IN ('pending', 'processing') AND j.job_type = 'broadcast'
     AND (j.job_id = b.job_id OR j.payload @> jsonb_build_object('broadcast_id', b.broadcast_id))`;

/**
 * Resumes a paused broadcast. Only one that a job drives, or whose sending had begun (fanned out), becomes
 * 'sending' again: a paused draft went back to 'sending' with no job to send it, and stayed so.
 * A started broadcast whose job is gone gets a new one (keyed, so at most one).
 */
async function resumeBroadcastIn(client: PoolClient, broadcastId: number): Promise<boolean> {
  const { rows } = await client.query(
    `UPDATE broadcasts b
        SET status = CASE WHEN b.started_at IS NOT NULL OR EXISTS (${DRIVING_JOB})
                            OR EXISTS (SELECT 1 FROM broadcast_deliveries d WHERE d.broadcast_id = b.broadcast_id)
                          THEN 'sending' ELSE 'draft' END, updated_at = now()
      WHERE b.broadcast_id = $1 AND b.status = 'paused'
     RETURNING b.status, b.job_id, EXISTS (${DRIVING_JOB}) AS driven`,
    [broadcastId],
  );
  const b = rows[0];
  if (!b) return false;
  if (b.status === 'sending' && !b.driven) {
    await client.query(
      `WITH j AS (
         INSERT INTO broadcast_queue_jobs (queue, job_type, payload, job_key)
         VALUES (COALESCE((SELECT queue FROM broadcast_queue_jobs WHERE job_id = $2), 'broadcasts'), 'broadcast',
                 jsonb_build_object('broadcast_id', $1::bigint), 'broadcast:' || $1)
         ON CONFLICT (job_key) WHERE job_key IS NOT NULL AND status IN ('pending', 'processing') DO NOTHING
         RETURNING job_id)
       UPDATE broadcasts SET job_id = j.job_id FROM j WHERE broadcast_id = $1`,
      [broadcastId, b.job_id],
    );
  }
  return true;
}

export interface QueueStatistics {
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
  /** Broadcast messages sent, counted to the minute as outcomes are written; send jobs are in completed*. */
  messagesSentLastHour: number;
  messagesSentLast24h: number;
}

const emptyByStatus = (): Record<JobStatus, number> => ({ pending: 0, processing: 0, completed: 0, failed: 0, cancelled: 0 });

// Broadcast messages sent in the last hour and 24 hours, from the per-minute counts the ledger's
// outcome writes keep (sql/0009): at most ~1,500 small rows, however big the day's broadcasts were.
export const MESSAGES_SENT_SQL = `
  SELECT COALESCE(sum(messages) FILTER (WHERE minute >= date_trunc('minute', now() - interval '1 hour')), 0)::int AS sent_1h,
         COALESCE(sum(messages), 0)::int AS sent_24h
    FROM broadcast_messages_sent
   WHERE minute >= date_trunc('minute', now() - interval '24 hours')`;

/** Totals over every job and recent delivery. */
export function statistics(pool: Pool): Promise<QueueStatistics> {
  return boundedRead(pool, readStatistics);
}

async function readStatistics(pool: PoolClient): Promise<QueueStatistics> {
  // Active jobs through the partial indexes; finished ones from the counts kept as jobs finish
  // (sql/0007_job_counts.sql), and the windows from per-minute counts, so that nothing here grows
  // with the jobs kept. The windows are counted to the minute: the minute the window starts in
  // counts whole.
  // One connection runs them in turn: the timeout is set on its transaction.
  const [byType, recent, messages, retried] = [
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
    await pool.query(MESSAGES_SENT_SQL),
    await pool.query(
      `SELECT (SELECT COALESCE(sum(jobs), 0) FROM broadcast_queue_job_counts WHERE retried)
            + (SELECT count(*) FROM broadcast_queue_jobs WHERE status = 'pending' AND attempts > 1)
            + (SELECT count(*) FROM broadcast_queue_jobs WHERE status = 'processing' AND attempts > 1) AS n`,
    ),
  ];
  const byStatus = emptyByStatus();
  const perType: QueueStatistics['byJobType'] = {};
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
    messagesSentLastHour: messages.rows[0].sent_1h,
    messagesSentLast24h: messages.rows[0].sent_24h,
  };
}

// node-postgres cancels its wait (not the server's work) after query_timeout; its types omit the key.
function withTimeout(text: string, timeoutMs: number): QueryConfig {
  return { text, query_timeout: timeoutMs } as QueryConfig;
}

export interface DatabaseCheck {
  reachable: boolean;
  latencyMs: number | null;
  /** Why it is unreachable (for logs: it may name hosts, so /health does not show it). */
  error?: string;
}

/** Runs SELECT 1, giving up after timeoutMs (a hung connect counts too). */
export async function checkDatabase(pool: Pool, timeoutMs = 2_000): Promise<DatabaseCheck> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const query = pool.query(withTimeout('SELECT 1', timeoutMs));
  query.catch(() => undefined);
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([query, timeout]);
    return { reachable: true, latencyMs: Math.round((performance.now() - started) * 100) / 100 };
  } catch (error) {
    return { reachable: false, latencyMs: null, error: error instanceof Error ? error.message : String(error) };
  } finally {
    clearTimeout(timer);
  }
}

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
       FROM (SELECT queue, 'pending' AS status, count(*) AS n, count(*) FILTER (WHERE run_at <= now()) AS due,
                    extract(epoch FROM now() - min(run_at) FILTER (WHERE run_at <= now()))::float8 AS oldest_due
               FROM broadcast_queue_jobs WHERE status = 'pending' GROUP BY queue
             UNION ALL
             SELECT queue, 'processing', count(*), 0, NULL FROM broadcast_queue_jobs WHERE status = 'processing' GROUP BY queue
             UNION ALL
             SELECT queue, status, sum(jobs), 0, NULL FROM broadcast_queue_job_counts GROUP BY queue, status) c
      GROUP BY 1, status HAVING sum(n) <> 0 ORDER BY 1, status`,
    // The server cancels the scan at timeoutMs; this later client-side limit covers a dead connection.
    timeoutMs + 1_000,
  ), values: [queues, OTHER_QUEUES_LABEL] }), timeoutMs);
  return {
    byState: rows.map((r: any) => ({ queue: r.queue, status: r.status, count: r.n })),
    pending: rows.filter((r: any) => r.status === 'pending').map((r: any) => ({ queue: r.queue, due: r.due, oldestDueSeconds: r.oldest_due === null ? null : Math.max(0, r.oldest_due) })),
  };
}
