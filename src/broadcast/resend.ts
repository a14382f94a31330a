// Resending part of a broadcast on purpose: its 'unknown' recipients (a crash hid whether they got
// the message) or those that failed for given reasons. The rows go back to 'pending' and the
// broadcast's counters move by the same amounts in the same transaction, so counters and ledger
// never disagree; then a job is made due to drain them.
import type { Pool } from '../db/pool.js';
import { inTransaction } from '../db/transaction.js';
import { PayloadError, REASON_CODES, isReasonCode, type ReasonCode } from '../errors.js';
import { BLOCKED_OUTCOMES, blockedSql } from './ledger.js';
import { broadcastJobKeySql, drivesBroadcast, insertBroadcastJob } from './broadcasts-store.js';

export interface ResendRequest {
  unknown: boolean;
  /** Failed rows whose reason code (the ledger's error_reason, sql/0017) is one of these, or 'all' failed rows. */
  failedReasons: readonly ReasonCode[] | 'all';
  maxAttempts: number;
}

const TRANSIENT: readonly ReasonCode[] = ['server_error', 'network', 'timeout'];

// The outcome names `bqctl broadcast resend --failed-class` took before the reason codes, with the
// codes that select those rows now. A recipient fails on a transient error only once its retries
// are exhausted, so both transient names select the transient codes; 'permanent:…' outcomes were
// the 'bad_request' class. The 403 class is one code, 'blocked', however Telegram worded it.
const OUTCOME_NAMES: Readonly<Record<string, readonly ReasonCode[]>> = {
  retries_exhausted: TRANSIENT,
  transient: TRANSIENT,
  permanent: ['bad_request'],
  deactivated: ['blocked'],
  kicked: ['blocked'],
  chat_deleted: ['blocked'],
};

/**
 * The failed rows `names` select: reason codes (REASON_CODES), the older outcome names above, or
 * 'all'. A name that is none of these throws a PayloadError naming the codes.
 */
export function failedReasons(names: readonly string[]): readonly ReasonCode[] | 'all' {
  if (names.includes('all')) return 'all';
  const reasons = new Set<ReasonCode>();
  for (const name of names) {
    const selected = isReasonCode(name) ? [name] : OUTCOME_NAMES[name];
    if (!selected) throw new PayloadError(`${JSON.stringify(name)} is not a reason code; failed recipients are resent by ${REASON_CODES.join(', ')} or all`);
    for (const reason of selected) reasons.add(reason);
  }
  return [...reasons];
}

/** What a resend did; `bqctl broadcast resend --json` prints it under these names. */
export interface ResendResult {
  broadcast_id: number;
  resent: number;
  from_unknown: number;
  from_failed: number;
  from_blocked: number;
  status: string;
  /** The job that will send them; null when nothing matched. */
  job_id: number | null;
  /** True when an unfinished job of this broadcast already existed and was reused. */
  existing_job: boolean;
}

// Rows are picked by their reason code; the counter a row leaves is told by the rule ledger.ts
// counted it in by (blockedSql), so the counters go back by exactly what they gained. A row
// failed before sql/0017 has no reason code and is picked only by 'all'.
const RESEND_SQL = `
  WITH t AS (
    SELECT chat_id, status, outcome, error_reason FROM broadcast_deliveries
     WHERE broadcast_id = $1
       AND ((status = 'unknown' AND $2::bool)
         OR (status = 'failed' AND ($3::bool OR error_reason = ANY($4::text[]))))
       FOR UPDATE),
  u AS (
    UPDATE broadcast_deliveries d
       SET status = 'pending', attempts = 0, next_attempt_at = now(), outcome = NULL,
           error_code = NULL, error_description = NULL, error_reason = NULL, updated_at = now()
      FROM t WHERE d.broadcast_id = $1 AND d.chat_id = t.chat_id
    RETURNING t.status AS old_status, COALESCE(${blockedSql('$5', 't.')}, false) AS was_blocked)
  SELECT count(*) FILTER (WHERE old_status = 'unknown')::int AS from_unknown,
         count(*) FILTER (WHERE old_status = 'failed' AND was_blocked)::int AS from_blocked,
         count(*) FILTER (WHERE old_status = 'failed' AND NOT was_blocked)::int AS from_failed
    FROM u`;

// An unfinished job already driving this broadcast: a second one would mark the first one's
// in-flight rows as crashed ('unknown'), so it is reused instead.
const UNFINISHED_JOB_SQL = `
  SELECT j.job_id, j.status FROM broadcast_queue_jobs j WHERE ${drivesBroadcast('j', '$1', '$2')} ORDER BY j.job_id LIMIT 1`;

export async function resendRecipients(pool: Pool, broadcastId: number, request: ResendRequest): Promise<ResendResult> {
  return inTransaction(pool, async (client) => {
    const b = (await client.query('SELECT status, job_id FROM broadcasts WHERE broadcast_id = $1 FOR UPDATE', [broadcastId])).rows[0];
    if (!b) throw new Error(`broadcast ${broadcastId} does not exist`);
    const all = request.failedReasons === 'all';
    const moved = (await client.query(RESEND_SQL, [broadcastId, request.unknown, all, all ? [] : request.failedReasons, BLOCKED_OUTCOMES])).rows[0];
    const resent = moved.from_unknown + moved.from_blocked + moved.from_failed;
    const result: ResendResult = { broadcast_id: broadcastId, resent, from_unknown: moved.from_unknown, from_failed: moved.from_failed, from_blocked: moved.from_blocked, status: b.status, job_id: null, existing_job: false };
    // Nothing moved: the transaction changed nothing, so committing it is as good as rolling back.
    if (resent === 0) return result;
    // A paused broadcast stays paused (resume sends them); anything else is sending again.
    const status = b.status === 'paused' ? 'paused' : 'sending';
    const existing = (await client.query(UNFINISHED_JOB_SQL, [broadcastId, b.job_id])).rows[0];
    let jobId: number;
    if (existing) {
      jobId = existing.job_id;
      result.existing_job = true;
      // A pending job waiting out a backoff is made due now (the UPDATE trigger wakes a daemon).
      if (existing.status === 'pending' && status === 'sending') await client.query(`UPDATE broadcast_queue_jobs SET run_at = now(), updated_at = now() WHERE job_id = $1 AND run_at > now()`, [jobId]);
    } else {
      const inserted = await client.query(
        `${insertBroadcastJob('$1', { queue: `COALESCE((SELECT queue FROM broadcast_queue_jobs WHERE job_id = $2), 'broadcasts')`, maxAttempts: '$3' })}
         RETURNING job_id`,
        [broadcastId, b.job_id, request.maxAttempts],
      );
      jobId = inserted.rows[0]?.job_id ?? (await client.query(`SELECT job_id FROM broadcast_queue_jobs WHERE job_key = ${broadcastJobKeySql('$1')} AND status IN ('pending', 'processing')`, [broadcastId])).rows[0].job_id;
    }
    // job_id follows the new job, so resuming a paused broadcast wakes the right one (trigger).
    await client.query(
      `UPDATE broadcasts
          SET unknown = unknown - $2, blocked = blocked - $3, failed = failed - $4, status = $5, job_id = $6,
              finished_at = NULL, failure_reason = NULL, updated_at = now()
        WHERE broadcast_id = $1`,
      [broadcastId, moved.from_unknown, moved.from_blocked, moved.from_failed, status, jobId],
    );
    return { ...result, status, job_id: jobId };
  });
}
