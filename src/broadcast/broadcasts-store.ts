// Every read of the broadcasts table the admin API, bqctl and the engine make, with its one row type
// and mapper (the row with its counts; progress.ts adds progress, send rate and ETA to it), and the
// insert of a broadcast and of the keyed job that drives one. A row keeps the table's column names:
// it is the record the admin API, `bqctl --json`, webhooks and psql all show.
import type { Pool, PoolClient } from '../db/pool.js';
import { LIST_BRIEF_BYTES, ONE_BRIEF_BYTES } from '../queue/jobs-store.js';
import type { BroadcastCounts } from './finish.js';

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
 * The broadcast a broadcast job drives: the one its payload names, or the one that names the job;
 * null when none.
 */
export async function broadcastOfJob(pool: Pool, jobId: number, payload: Record<string, unknown> | null): Promise<BroadcastRow | null> {
  const named = payload?.broadcast_id;
  const { rows } = await pool.query(
    `SELECT ${broadcastColumns()} FROM broadcasts WHERE broadcast_id = $2 OR job_id = $1 ORDER BY broadcast_id LIMIT 1`,
    [jobId, Number.isSafeInteger(named) ? named : null],
  );
  return rows[0] ? broadcastRow(rows[0]) : null;
}

/** Broadcasts newest first, content over LIST_BRIEF_BYTES summarised; `statuses` null for all. */
export async function listBroadcastRows(pool: Pool, statuses: readonly string[] | null, limit: number, offset: number): Promise<BroadcastRow[]> {
  const { rows } = await pool.query(
    `SELECT ${broadcastColumns(LIST_BRIEF_BYTES)} FROM broadcasts WHERE $1::text[] IS NULL OR status = ANY($1) ORDER BY broadcast_id DESC LIMIT $2 OFFSET $3`,
    [statuses, limit, offset],
  );
  return rows.map(broadcastRow);
}

/**
 * A final broadcast without its content, only when `webhookJobId` is the webhook job the daemon
 * recorded for it (what a webhook body may tell); null otherwise.
 */
export async function finishedBroadcastOfWebhook(pool: Pool, broadcastId: number, webhookJobId: number): Promise<BroadcastRow | null> {
  const { rows } = await pool.query(
    `SELECT ${broadcastColumns('none')} FROM broadcasts WHERE broadcast_id = $1 AND webhook_job_id = $2 AND status = ANY($3::text[])`,
    [broadcastId, webhookJobId, FINAL_STATUSES],
  );
  return rows[0] ? broadcastRow(rows[0]) : null;
}

/**
 * One broadcast with its content whole (what the engine sends, the audience with every chat id);
 * null when it does not exist.
 */
export async function loadBroadcast(pool: Pool | PoolClient, broadcastId: number): Promise<BroadcastRow | null> {
  const { rows } = await pool.query(`SELECT ${broadcastColumns(null)} FROM broadcasts WHERE broadcast_id = $1`, [broadcastId]);
  return rows[0] ? broadcastRow(rows[0]) : null;
}

/** A broadcast's recipients by ledger status, outcome and reason code (what a resend selects by), most common first. */
export async function deliveryOutcomes(pool: Pool, broadcastId: number): Promise<{ status: string; outcome: string | null; error_reason: string | null; count: number }[]> {
  const { rows } = await pool.query(
    `SELECT status, outcome, error_reason, count(*)::int AS count FROM broadcast_deliveries WHERE broadcast_id = $1
      GROUP BY status, outcome, error_reason ORDER BY count(*) DESC, status, outcome, error_reason`,
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
  /** deliver_at_local and default_time_zone (local-time.ts); absent: at once, and UTC. */
  deliverAtLocal?: string | null;
  defaultTimeZone?: string | null;
  /** Tracked links and buttons; absent: not tracked. */
  track?: boolean;
  /** Test, then send the winner (ab-test.ts, checked by the caller with parseAbTest); absent: none. */
  abTest?: Record<string, unknown> | null;
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
export async function createBroadcast(pool: Pool, b: NewBroadcast): Promise<Pick<BroadcastRow, 'broadcast_id' | 'status' | 'job_id'>> {
  const { rows } = await pool.query(
    `WITH b AS (
       INSERT INTO broadcasts (title, message, variants, audience, frequency_cap, allow_paid_broadcast, deliver_at_local, default_time_zone, track, ab_test, status)
       VALUES ($1, $2, $3, $4, $5, $6, $12, COALESCE($13, 'UTC'), $14, $15, CASE WHEN $7::bool THEN 'queued' ELSE 'draft' END)
       RETURNING broadcast_id, status),
     j AS (
       ${insertBroadcastJob('b.broadcast_id', { queue: `COALESCE($8, 'broadcasts')`, priority: 'COALESCE($9, 0)', runAt: 'COALESCE($10, now())', maxAttempts: '$11', from: 'FROM b WHERE $7::bool' })}
       RETURNING job_id)
     SELECT b.broadcast_id, b.status, (SELECT job_id FROM j) AS job_id FROM b`,
    [b.title, b.message ? JSON.stringify(b.message) : null, b.variants ? JSON.stringify(b.variants) : null, JSON.stringify(b.audience), b.frequencyCap, b.allowPaidBroadcast,
      b.send !== null, b.send?.queue ?? null, b.send?.priority ?? null, b.send?.runAt ?? null, b.send?.maxAttempts ?? null, b.deliverAtLocal ?? null, b.defaultTimeZone ?? null,
      b.track === true, b.abTest ? JSON.stringify(b.abTest) : null],
  );
  return { broadcast_id: rows[0].broadcast_id, status: rows[0].status, job_id: rows[0].job_id };
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

/**
 * The columns of a BroadcastRow, in its order. The content (message, variants, audience) is cut to
 * `briefBytes` each with the chat_ids as a count, whole with null, and left out with 'none'.
 */
export function broadcastColumns(briefBytes: number | null | 'none' = ONE_BRIEF_BYTES): string {
  const content = briefBytes === 'none' ? ''
    : briefBytes === null ? 'message, variants, audience,'
    : `broadcast_queue_brief(message, ${Math.floor(briefBytes)}) AS message, broadcast_queue_brief(variants, ${Math.floor(briefBytes)}) AS variants,
       broadcast_queue_brief(${AUDIENCE_SUMMARY}, ${Math.floor(briefBytes)}) AS audience,`;
  return `broadcast_id, title, status, job_id, total, sent, failed, blocked, skipped, unknown, failure_reason,
          allow_paid_broadcast, frequency_cap, track, deliver_at_local, default_time_zone, ab_test, ab_decide_at, ab_decided_at, ab_winner, ab_p_value, ab_sent_variant,
          ${content} created_at, started_at, finished_at, updated_at`;
}

export interface Variant {
  name: string;
  weight: number;
  message: Record<string, unknown>;
}

/** One row of broadcasts, under its column names and in their order (the driver's bookkeeping left out). */
export interface BroadcastRow extends BroadcastCounts {
  broadcast_id: number;
  title: string | null;
  status: BroadcastStatus;
  job_id: number | null;
  failure_reason: string | null;
  allow_paid_broadcast: boolean;
  frequency_cap: number | null;
  /** Tracked links and buttons (engagement/). */
  track: boolean;
  /** Each recipient's local time to send at ("09:00" or "2026-12-24T09:00"; local-time.ts), or null for at once. */
  deliver_at_local: string | null;
  /** The zone of recipients without a time_zone of their own. */
  default_time_zone: string;
  /** Test, then send the winner (ab-test.ts, sql/0024): the field as given, and the decision once made. */
  ab_test: Record<string, unknown> | null;
  ab_decide_at: Date | null;
  ab_decided_at: Date | null;
  ab_winner: string | null;
  ab_p_value: number | null;
  ab_sent_variant: string | null;
  /** The content: absent from lists of broadcasts in progress, summarised when read for showing. */
  message?: Record<string, unknown> | null;
  variants?: Variant[] | null;
  audience?: Record<string, unknown>;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  updated_at: Date;
}

/** The one mapper: a row read with broadcastColumns() as a BroadcastRow (and nothing else the statement returned). */
export function broadcastRow(r: Record<string, any>): BroadcastRow {
  return {
    broadcast_id: r.broadcast_id, title: r.title, status: r.status, job_id: r.job_id,
    total: r.total, sent: r.sent, failed: r.failed, blocked: r.blocked, skipped: r.skipped, unknown: r.unknown,
    failure_reason: r.failure_reason, allow_paid_broadcast: r.allow_paid_broadcast, frequency_cap: r.frequency_cap, track: r.track,
    deliver_at_local: r.deliver_at_local, default_time_zone: r.default_time_zone,
    ab_test: r.ab_test, ab_decide_at: r.ab_decide_at, ab_decided_at: r.ab_decided_at, ab_winner: r.ab_winner, ab_p_value: r.ab_p_value, ab_sent_variant: r.ab_sent_variant,
    ...(r.message !== undefined ? { message: r.message, variants: r.variants, audience: r.audience } : {}),
    created_at: r.created_at, started_at: r.started_at, finished_at: r.finished_at, updated_at: r.updated_at,
  };
}
