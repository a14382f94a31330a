// Every read of the broadcasts table the admin API and bqctl show, with its one row type and
// mapper: the row with its counts, progress, send rate and ETA.
import type { Pool, PoolClient } from '../db/pool.js';
import { LIST_BRIEF_BYTES, ONE_BRIEF_BYTES } from '../queue/jobs-store.js';
import type { BroadcastCounts } from './ledger.js';

export type BroadcastStatus = 'draft' | 'queued' | 'sending' | 'paused' | 'completed' | 'cancelled' | 'failed';
/**
 * SQL: the unfinished 'broadcast' job aliased `j` drives broadcast `broadcastId`: it is the job the
 * broadcasts row names (`namedJobId`), or one enqueued for it that has not run yet (a job names its
 * broadcast only once it runs). The one place that says which job drives a broadcast.
 */
export function drivesBroadcast(j: string, broadcastId: string, namedJobId: string): string {
  return `(${j}.job_type = 'broadcast' AND ${j}.status IN ('pending', 'processing')
           AND (${j}.job_id = ${namedJobId} OR ${j}.payload @> jsonb_build_object('broadcast_id', ${broadcastId}::bigint)))`;
}

/**
 * The broadcasts row (columns as broadcastColumns(), snake_case) a broadcast job drives: the one
 * its payload names, or the one that names the job; undefined when none.
 */
export async function broadcastRowOfJob(pool: Pool, jobId: number, payload: Record<string, unknown> | null): Promise<Record<string, unknown> | undefined> {
  const named = payload?.broadcast_id;
  const { rows } = await pool.query(
    `SELECT ${broadcastColumns()} FROM broadcasts WHERE broadcast_id = $2 OR job_id = $1 ORDER BY broadcast_id LIMIT 1`,
    [jobId, Number.isSafeInteger(named) ? named : null],
  );
  return rows[0];
}

/** Broadcasts rows (broadcastColumns(LIST_BRIEF_BYTES), snake_case), newest first; `statuses` null for all. */
export async function listBroadcastRows(pool: Pool, statuses: readonly string[] | null, limit: number, offset: number): Promise<Record<string, unknown>[]> {
  const { rows } = await pool.query(
    `SELECT ${broadcastColumns(LIST_BRIEF_BYTES)} FROM broadcasts WHERE $1::text[] IS NULL OR status = ANY($1) ORDER BY broadcast_id DESC LIMIT $2 OFFSET $3`,
    [statuses, limit, offset],
  );
  return rows;
}

/** One broadcasts row (broadcastColumns(), snake_case); undefined when it does not exist. */
export async function broadcastRow(pool: Pool, broadcastId: number): Promise<Record<string, unknown> | undefined> {
  const { rows } = await pool.query(`SELECT ${broadcastColumns()} FROM broadcasts WHERE broadcast_id = $1`, [broadcastId]);
  return rows[0];
}

/** A broadcast's recipients by ledger status and outcome, most common first. */
export async function deliveryOutcomes(pool: Pool, broadcastId: number): Promise<{ status: string; outcome: string | null; count: number }[]> {
  const { rows } = await pool.query(
    `SELECT status, outcome, count(*)::int AS count FROM broadcast_deliveries WHERE broadcast_id = $1
      GROUP BY status, outcome ORDER BY count(*) DESC, status, outcome`,
    [broadcastId],
  );
  return rows;
}

export interface NewBroadcast {
  title: string | null | undefined;
  message: Record<string, unknown> | undefined;
  variants: unknown[] | undefined;
  audience: object;
  frequencyCap: number | null;
  allowPaidBroadcast: boolean;
  /** Enqueue its job too (then it is 'queued', else a 'draft'). */
  send: { queue?: string; priority?: number; runAt?: Date | string; maxAttempts: number } | null;
}

/** The key of the job that drives broadcast `broadcastId`: at most one unfinished one per broadcast. */
export function broadcastJobKey(broadcastId: number): string {
  return `broadcast:${broadcastId}`;
}

/** broadcastJobKey() in SQL, for `id`, an SQL expression. */
export function broadcastJobKeySql(id: string): string {
  return `'broadcast:' || ${id}`;
}

/** SQL expressions for the columns of a broadcast's job; left out, the table's defaults. */
export interface BroadcastJobColumns {
  queue: string;
  priority?: string;
  runAt?: string;
  maxAttempts?: string;
  /** FROM/WHERE for the SELECT, when `id` reads a row of the caller's statement or the insert is conditional. */
  from?: string;
}

/**
 * The insert of the keyed job that drives broadcast `id` (an SQL expression of the caller's
 * statement), without its RETURNING: while one is unfinished, it inserts nothing.
 */
export function insertBroadcastJob(id: string, job: BroadcastJobColumns): string {
  return `INSERT INTO broadcast_queue_jobs (queue, job_type, payload, priority, run_at, max_attempts, job_key)
       SELECT ${job.queue}, 'broadcast', jsonb_build_object('broadcast_id', ${id}::bigint),
              ${job.priority ?? '0'}, ${job.runAt ?? 'now()'}, ${job.maxAttempts ?? '3'}, ${broadcastJobKeySql(id)}
         ${job.from ?? ''}
       ON CONFLICT (job_key) WHERE job_key IS NOT NULL AND status IN ('pending', 'processing') DO NOTHING`;
}

/** Saves a broadcast and, with `send`, its keyed job, in one statement: both exist or neither. */
export async function createBroadcast(pool: Pool, b: NewBroadcast): Promise<{ broadcastId: number; status: string; jobId: number | null }> {
  const { rows } = await pool.query(
    `WITH b AS (
       INSERT INTO broadcasts (title, message, variants, audience, frequency_cap, allow_paid_broadcast, status)
       VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $7::bool THEN 'queued' ELSE 'draft' END)
       RETURNING broadcast_id, status),
     j AS (
       ${insertBroadcastJob('b.broadcast_id', { queue: `COALESCE($8, 'broadcasts')`, priority: 'COALESCE($9, 0)', runAt: 'COALESCE($10, now())', maxAttempts: '$11', from: 'FROM b WHERE $7::bool' })}
       RETURNING job_id)
     SELECT b.broadcast_id, b.status, (SELECT job_id FROM j) AS job_id FROM b`,
    [b.title, b.message ? JSON.stringify(b.message) : null, b.variants ? JSON.stringify(b.variants) : null, JSON.stringify(b.audience), b.frequencyCap, b.allowPaidBroadcast,
      b.send !== null, b.send?.queue ?? null, b.send?.priority ?? null, b.send?.runAt ?? null, b.send?.maxAttempts ?? null],
  );
  return { broadcastId: rows[0].broadcast_id, status: rows[0].status, jobId: rows[0].job_id };
}

/** A broadcast's status; null when it does not exist. */
export async function broadcastStatus(pool: Pool, broadcastId: number): Promise<string | null> {
  const { rows } = await pool.query('SELECT status FROM broadcasts WHERE broadcast_id = $1', [broadcastId]);
  return rows[0]?.status ?? null;
}

/** A draft or queued broadcast is being sent now (its audience was fanned out before). */
export async function markSending(pool: Pool, broadcastId: number): Promise<void> {
  await pool.query(`UPDATE broadcasts SET status = 'sending', updated_at = now() WHERE broadcast_id = $1 AND status IN ('draft', 'queued')`, [broadcastId]);
}

/** A broadcast in one of these is finished: nothing more is sent for it. */
export const FINAL_STATUSES: readonly string[] = ['completed', 'cancelled', 'failed'];

// An audience of explicit chat_ids can hold 100k numbers; it is shown as a count.
const AUDIENCE_SUMMARY = `
  CASE WHEN jsonb_typeof(audience -> 'chat_ids') = 'array'
       THEN (audience - 'chat_ids') || jsonb_build_object('chat_ids_count', jsonb_array_length(audience -> 'chat_ids'))
       ELSE audience END`;
/** The broadcasts columns with message, variants and audience bounded (chat_ids as a count). */
export function broadcastColumns(briefBytes: number = ONE_BRIEF_BYTES): string {
  const bytes = Math.floor(briefBytes);
  return `broadcast_id, title, broadcast_queue_brief(message, ${bytes}) AS message, broadcast_queue_brief(variants, ${bytes}) AS variants,
          broadcast_queue_brief(${AUDIENCE_SUMMARY}, ${bytes}) AS audience, frequency_cap, allow_paid_broadcast, status, total, sent,
          failed, blocked, skipped, unknown, failure_reason, job_id, created_at, started_at, finished_at, updated_at`;
}
/** A broadcasts row with its counts and how far along it is. */
export interface BroadcastProgress extends BroadcastCounts {
  broadcastId: number;
  title: string | null;
  status: BroadcastStatus;
  jobId: number | null;
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
  const final = FINAL_STATUSES.includes(r.status);
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

// Not yet final: what an operator asks about first when something seems stuck. 'queued' is
// included: a broadcast whose job has not started yet (a stopped daemon, a halted bot) is the one
// most worth seeing.
export const IN_PROGRESS_STATUSES: readonly BroadcastStatus[] = ['queued', 'sending', 'paused'];

/** Broadcasts queued, being sent or paused, oldest first (at most 100). */
export async function broadcastsInProgress(pool: Pool): Promise<BroadcastProgress[]> {
  const { rows } = await pool.query(
    `SELECT ${progressColumns(1)} FROM broadcasts b
      WHERE b.status = ANY($2::text[])
      ORDER BY b.created_at, b.broadcast_id
      LIMIT 100`,
    [RATE_WINDOW_SECONDS, IN_PROGRESS_STATUSES],
  );
  return rows.map(progressOf);
}

// Broadcast messages sent in the last hour and 24 hours, from the per-minute counts the ledger's
// outcome writes keep (sql/0009): at most ~1,500 small rows, however big the day's broadcasts were.
export const MESSAGES_SENT_SQL = `
  SELECT COALESCE(sum(messages) FILTER (WHERE minute >= date_trunc('minute', now() - interval '1 hour')), 0)::int AS sent_1h,
         COALESCE(sum(messages), 0)::int AS sent_24h
    FROM broadcast_messages_sent
   WHERE minute >= date_trunc('minute', now() - interval '24 hours')`;

/** Broadcast messages sent in the last hour and 24 hours. */
export async function readMessagesSent(pool: Pool | PoolClient): Promise<{ lastHour: number; last24h: number }> {
  const { rows } = await pool.query(MESSAGES_SENT_SQL);
  return { lastHour: rows[0].sent_1h, last24h: rows[0].sent_24h };
}

/**
 * Broadcast messages sent per `bucketMinutes` over the last `hours`: [bucket start in epoch
 * seconds, messages], oldest first, empty buckets as zeros; from the per-minute counts (sql/0009).
 */
export async function messagesSentSeries(pool: Pool | PoolClient, hours: number, bucketMinutes: number): Promise<[number, number][]> {
  const { rows } = await pool.query(
    `WITH buckets AS (
       SELECT generate_series(date_bin($2::float8 * interval '1 minute', now() - $1::float8 * interval '1 hour', 'epoch'),
                              now(), $2::float8 * interval '1 minute') AS t),
     m AS (
       SELECT date_bin($2::float8 * interval '1 minute', minute, 'epoch') AS t, sum(messages) AS messages
         FROM broadcast_messages_sent WHERE minute >= now() - $1::float8 * interval '1 hour' - $2::float8 * interval '1 minute'
        GROUP BY 1)
     SELECT extract(epoch FROM b.t)::float8 AS t, COALESCE(m.messages, 0)::float8 AS messages
       FROM buckets b LEFT JOIN m USING (t) ORDER BY b.t`,
    [hours, bucketMinutes],
  );
  return rows.map((r) => [r.t, r.messages]);
}

/**
 * One page of broadcasts with their progress, newest first, by key (broadcast_id < before);
 * `statuses` null for all.
 */
export async function listBroadcasts(pool: Pool, statuses: readonly string[] | null, before: number | null, limit: number): Promise<BroadcastProgress[]> {
  const { rows } = await pool.query(
    `SELECT ${progressColumns(1)} FROM broadcasts b
      WHERE ($2::text[] IS NULL OR b.status = ANY($2)) AND ($3::bigint IS NULL OR b.broadcast_id < $3)
      ORDER BY b.broadcast_id DESC LIMIT $4`,
    [RATE_WINDOW_SECONDS, statuses, before, Math.floor(limit)],
  );
  return rows.map(progressOf);
}
