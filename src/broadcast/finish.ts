import type { Pool } from '../db/pool.js';
import { DriverLostError } from '../errors.js';
import { owned, type Driver } from './driver.js';
import { BLOCKED_OUTCOMES, blockedSql } from './ledger.js';

// How a broadcast ends: its final counts, from the ledger, written to its row with its status.

export interface BroadcastCounts {
  total: number;
  sent: number;
  failed: number;
  blocked: number;
  skipped: number;
  unknown: number;
}

export interface Finish {
  status: 'completed' | 'cancelled' | 'failed';
  reason: string | null;
  counts: BroadcastCounts;
  /** The queue of the 'webhook' job, enqueued only when `webhook` is set. */
  queue: string;
  webhook: boolean;
}

/**
 * Closes the broadcast with its final counts. The webhook job is enqueued by the same statement,
 * so a crash cannot lose it; its job_key keeps a re-run from sending it twice. It carries only the
 * id: the body is built from this row when it is sent, and only by the job named in webhook_job_id.
 * The insert checks the driver under the same KEY SHARE lock as every ledger write: with a plain
 * read, a takeover holding the row let the insert through while the UPDATE, waiting for the
 * takeover, then matched nothing, leaving a webhook job that no broadcast named.
 */
export async function finishBroadcast(pool: Pool, driver: Driver, f: Finish): Promise<void> {
  const { counts } = f;
  const { rowCount } = await pool.query(
    `WITH hook AS (
       INSERT INTO broadcast_queue_jobs (queue, job_type, payload, max_attempts, job_key)
       SELECT $10, 'webhook', jsonb_build_object('event', 'broadcast.finished', 'broadcast_id', $1::bigint), 8, 'webhook:broadcast:' || $1
        WHERE $11::boolean AND ${owned('$12', '$13')}
       ON CONFLICT (job_key) WHERE job_key IS NOT NULL AND status IN ('pending', 'processing') DO NOTHING
       RETURNING job_id)
     UPDATE broadcasts SET status = $2, failure_reason = $3, finished_at = now(), updated_at = now(),
            total = $4, sent = $5, failed = $6, blocked = $7, skipped = $8, unknown = $9,
            webhook_job_id = COALESCE((SELECT job_id FROM hook), webhook_job_id)
      WHERE broadcast_id = $1 AND driver_job_id = $12 AND driver_claimed_at = $13::timestamptz`,
    [driver.broadcastId, f.status, f.reason, counts.total, counts.sent, counts.failed, counts.blocked, counts.skipped, counts.unknown, f.queue, f.webhook, driver.jobId, driver.claimedAt],
  );
  if (rowCount === 0) throw new DriverLostError(driver);
}

/** Fails a broadcast that is not final yet, with its counts, as long as `driver` still drives it. */
export async function failBroadcast(pool: Pool, driver: Driver, reason: string, counts: BroadcastCounts): Promise<void> {
  await pool.query(
    `UPDATE broadcasts SET status = 'failed', failure_reason = $2, finished_at = now(), updated_at = now(),
            total = $3, sent = $4, failed = $5, blocked = $6, skipped = $7, unknown = $8
      WHERE broadcast_id = $1 AND status NOT IN ('completed', 'cancelled', 'failed')
        AND driver_job_id = $9 AND driver_claimed_at = $10::timestamptz`,
    [driver.broadcastId, reason.slice(0, 1000), counts.total, counts.sent, counts.failed, counts.blocked, counts.skipped, counts.unknown, driver.jobId, driver.claimedAt],
  );
}

/** The final counts, from the ledger itself, with the same split per variant. */
export async function countDeliveries(pool: Pool, broadcastId: number): Promise<BroadcastCounts & { variants?: Record<string, BroadcastCounts> }> {
  const { rows } = await pool.query(
    `SELECT variant,
            count(*)::int AS total,
            count(*) FILTER (WHERE status = 'sent')::int AS sent,
            count(*) FILTER (WHERE status = 'failed' AND ${blockedSql('$2')})::int AS blocked,
            count(*) FILTER (WHERE status = 'failed' AND NOT ${blockedSql('$2')})::int AS failed,
            count(*) FILTER (WHERE status = 'skipped')::int AS skipped,
            count(*) FILTER (WHERE status = 'unknown')::int AS unknown
       FROM broadcast_deliveries WHERE broadcast_id = $1 GROUP BY variant ORDER BY variant NULLS FIRST`,
    [broadcastId, BLOCKED_OUTCOMES],
  );
  const total: BroadcastCounts = { total: 0, sent: 0, failed: 0, blocked: 0, skipped: 0, unknown: 0 };
  const variants: Record<string, BroadcastCounts> = {};
  for (const row of rows) {
    const counts = { total: row.total, sent: row.sent, failed: row.failed, blocked: row.blocked, skipped: row.skipped, unknown: row.unknown };
    for (const key of Object.keys(total) as (keyof BroadcastCounts)[]) total[key] += counts[key];
    if (row.variant !== null) variants[row.variant] = counts;
  }
  return Object.keys(variants).length ? { ...total, variants } : total;
}
