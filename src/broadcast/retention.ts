// History retention: finished broadcasts older than the retention go, with their ledger rows.
// A 1M-subscriber bot that sends daily adds 1M ledger rows a day; without this the ledger only grows.
//
// The cost of a run must not grow with what is kept, and a sender must never wait on it:
//  - one broadcast at a time, its ledger deleted in batches walked along the primary key
//    (broadcast_id, chat_id), so a batch reads only the rows it deletes;
//  - only broadcasts that are finished and whose job is finished: no sender claims, writes or
//    counts their rows, so the row locks a batch takes are on rows nobody else wants (the frequency
//    cap reads only sent rows of the last 24 h, and the retention is at least a day);
//  - every statement under a short lock_timeout: if it ever had to wait (a second cleaner, a DDL),
//    it gives up and the next run carries on, rather than queueing a sender behind it;
//  - SKIP LOCKED, so two daemons' cleaners share the work instead of waiting on each other;
//  - the planner is told not to scan or sort: with statistics taken before the rows existed it might
//    otherwise choose a sequential scan, and the cost would be the table's, not the batch's.
import type { Pool, PoolClient } from '../db/pool.js';
import { inTransaction } from '../db/transaction.js';
import type { MaintenanceTask } from '../queue/maintenance.js';

/** Ledger rows deleted per statement: about 20–60 ms of work, a few MB of WAL. */
export const RETENTION_BATCH = 5_000;

// Finished by status and by job: a cancelled broadcast whose job is still winding down is not.
const NEXT_SQL = `
  SELECT b.broadcast_id FROM broadcasts b
   WHERE b.status IN ('completed', 'cancelled', 'failed')
     AND COALESCE(b.finished_at, b.updated_at) < now() - $1::float8 * interval '1 day'
     AND b.broadcast_id > $2
     AND NOT EXISTS (SELECT 1 FROM broadcast_queue_jobs j
                      WHERE j.job_id = b.job_id AND j.status IN ('pending', 'processing'))
   ORDER BY b.broadcast_id
   LIMIT 1`;

const BATCH_SQL = `
  WITH doomed AS (
    SELECT chat_id FROM broadcast_deliveries
     WHERE broadcast_id = $1 AND ($2::bigint IS NULL OR chat_id > $2)
     ORDER BY chat_id
     LIMIT $3
       FOR UPDATE SKIP LOCKED)
  DELETE FROM broadcast_deliveries d USING doomed
   WHERE d.broadcast_id = $1 AND d.chat_id = doomed.chat_id
  RETURNING d.chat_id`;

// Only once its ledger is empty, so the ON DELETE CASCADE never has a large delete of its own to do.
const BROADCAST_SQL = `
  DELETE FROM broadcasts b
   WHERE b.broadcast_id = $1
     AND b.status IN ('completed', 'cancelled', 'failed')
     AND NOT EXISTS (SELECT 1 FROM broadcast_deliveries d WHERE d.broadcast_id = $1)`;

export interface RetentionResult {
  broadcasts: number;
  deliveries: number;
}

export interface RetentionOptions {
  batch?: number;
  /** How long any statement may wait for a lock before this run gives up. Defaults to 200 ms. */
  lockTimeoutMs?: number;
  /** Checked between batches: shutdown does not wait for a whole run. */
  signal?: AbortSignal;
}

function inShortTransaction<T>(pool: Pool, lockTimeoutMs: number, fn: (c: PoolClient) => Promise<T>): Promise<T> {
  return inTransaction(pool, fn, {
    setLocal: [`lock_timeout = ${Math.max(1, Math.round(lockTimeoutMs))}`, 'enable_seqscan = off', 'enable_bitmapscan = off', 'enable_sort = off'],
  });
}

/** Deletes one batch of a broadcast's ledger after chat_id `after` (null: from the first); returns the chat ids deleted. */
export function deleteLedgerBatch(client: Pick<PoolClient, 'query'>, broadcastId: number, after: number | null, batch = RETENTION_BATCH): Promise<number[]> {
  return client.query(BATCH_SQL, [broadcastId, after, batch]).then(({ rows }) => rows.map((r) => Number(r.chat_id)));
}

/**
 * Deletes finished broadcasts older than `days` and their ledger rows; returns how many of each.
 * Stops early, without an error, when a statement would have had to wait for a lock.
 */
export async function deleteOldBroadcasts(pool: Pool, days: number, options: RetentionOptions = {}): Promise<RetentionResult> {
  const batch = options.batch ?? RETENTION_BATCH;
  const lockTimeoutMs = options.lockTimeoutMs ?? 200;
  const result: RetentionResult = { broadcasts: 0, deliveries: 0 };
  let last = 0;
  for (;;) {
    if (options.signal?.aborted) return result;
    const { rows } = await pool.query(NEXT_SQL, [days, last]);
    if (rows.length === 0) return result;
    const broadcastId = Number(rows[0].broadcast_id);
    last = broadcastId;
    // Chat ids reach down to -(2^53 - 1) (sql/0002), so the walk starts from no bound at all.
    let after: number | null = null;
    for (;;) {
      const deleted = await inShortTransaction(pool, lockTimeoutMs, (c) => deleteLedgerBatch(c, broadcastId, after, batch));
      result.deliveries += deleted.length;
      if (deleted.length < batch) break;
      if (options.signal?.aborted) return result;
      after = Math.max(...deleted);
    }
    const gone = await inShortTransaction(pool, lockTimeoutMs, (c) => c.query(BROADCAST_SQL, [broadcastId]));
    result.broadcasts += gone.rowCount ?? 0;
  }
}

/** The maintenance task for finished broadcasts older than `days` (ledgerRetentionDays) and their ledger rows. */
export function historyRetention(pool: Pool, days: number): MaintenanceTask {
  return {
    name: 'broadcast history cleanup',
    days,
    async run(signal) {
      const result = await deleteOldBroadcasts(pool, days, { signal });
      if (!result.broadcasts && !result.deliveries) return [];
      return [{ level: 'info', fields: { ...result, retentionDays: days }, message: 'old broadcasts and their ledger deleted' }];
    },
  };
}
