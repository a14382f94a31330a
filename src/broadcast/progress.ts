// How far along a broadcast is: its row (broadcasts-store.ts) with what is done and what remains,
// the send rate over the last 10 seconds and an ETA, for one broadcast, those in progress and a
// page of them. What `bqctl watch`, the admin API and the dashboard show.
import type { Pool, PoolClient } from '../db/pool.js';
import { ONE_BRIEF_BYTES } from '../queue/jobs-store.js';
import { FINAL_STATUSES, broadcastColumns, broadcastRow, type BroadcastRow, type BroadcastStatus } from './broadcasts-store.js';

/** A broadcast with how far along it is. */
export interface BroadcastProgress extends BroadcastRow {
  /** Recipients with a final outcome: sent + failed + blocked + skipped + unknown. */
  done: number;
  remaining: number;
  /** done / total, from 0 to 1; 1 for a finished broadcast with no recipients. */
  progress: number;
  /** Messages sent per second over the last 10 seconds. */
  rate_per_second: number;
  /** remaining / rate_per_second; null when nothing is being sent, the broadcast is final, or rows wait for their local time. */
  eta_seconds: number | null;
  /** Recipients not due yet: waiting for their local time (deliver_at_local), or for a retry. */
  waiting: number;
  /** When the first of them is due; null when none waits. */
  next_due_at: Date | null;
}

const RATE_WINDOW_SECONDS = 10;

/** A row's columns and the messages it sent recently; `$<rateParam>` is the rate window in seconds. */
function progressColumns(rateParam: number, briefBytes: number | 'none'): string {
  return `${broadcastColumns(briefBytes)},
    (SELECT count(*)::int FROM broadcast_deliveries d
      WHERE d.broadcast_id = b.broadcast_id AND d.status = 'sent'
        AND d.sent_at > now() - $${rateParam}::float8 * interval '1 second') AS recent_sent,
    w.waiting, w.next_due_at`;
}

// Rows not due yet, through the ledger's partial index of pending rows (sql/0002): a finished
// broadcast has none there, so lists of them pay nothing. LATERAL after the FROM item `b`.
const WAITING_JOIN = `
  CROSS JOIN LATERAL (SELECT count(*)::int AS waiting, min(d.next_attempt_at) AS next_due_at FROM broadcast_deliveries d
                       WHERE d.broadcast_id = b.broadcast_id AND d.status = 'pending' AND d.next_attempt_at > now()) w`;

function progressOf(r: Record<string, any>): BroadcastProgress {
  const row = broadcastRow(r);
  const done = row.sent + row.failed + row.blocked + row.skipped + row.unknown;
  const final = FINAL_STATUSES.includes(row.status);
  const remaining = Math.max(0, row.total - done);
  const ratePerSecond = r.recent_sent / RATE_WINDOW_SECONDS;
  return {
    ...row,
    done,
    remaining,
    progress: row.total > 0 ? Math.min(1, done / row.total) : final ? 1 : 0,
    rate_per_second: ratePerSecond,
    eta_seconds: !final && ratePerSecond > 0 && !(row.deliver_at_local && r.waiting > 0) ? Math.ceil(remaining / ratePerSecond) : null,
    waiting: r.waiting,
    next_due_at: r.next_due_at,
  };
}

/** One broadcast with its counts, progress, send rate over the last 10 s and ETA; null if unknown. */
export async function broadcastProgress(pool: Pool | PoolClient, broadcastId: number): Promise<BroadcastProgress | null> {
  const { rows } = await pool.query(`SELECT ${progressColumns(2, ONE_BRIEF_BYTES)} FROM broadcasts b ${WAITING_JOIN} WHERE b.broadcast_id = $1`, [broadcastId, RATE_WINDOW_SECONDS]);
  return rows[0] ? progressOf(rows[0]) : null;
}

// Not yet final: what an operator asks about first when something seems stuck. 'queued' is
// included: a broadcast whose job has not started yet (a stopped daemon, a halted bot) is the one
// most worth seeing.
export const IN_PROGRESS_STATUSES: readonly BroadcastStatus[] = ['queued', 'sending', 'paused'];

/** Broadcasts queued, being sent or paused, oldest first (at most 100), without their content. */
export async function broadcastsInProgress(pool: Pool): Promise<BroadcastProgress[]> {
  const { rows } = await pool.query(
    `SELECT ${progressColumns(1, 'none')} FROM broadcasts b ${WAITING_JOIN}
      WHERE b.status = ANY($2::text[])
      ORDER BY b.created_at, b.broadcast_id
      LIMIT 100`,
    [RATE_WINDOW_SECONDS, IN_PROGRESS_STATUSES],
  );
  return rows.map(progressOf);
}

/**
 * One page of broadcasts with their progress, newest first, by key (broadcast_id < before);
 * `statuses` null for all.
 */
export async function listBroadcasts(pool: Pool, statuses: readonly string[] | null, before: number | null, limit: number): Promise<BroadcastProgress[]> {
  const { rows } = await pool.query(
    `SELECT ${progressColumns(1, 'none')} FROM broadcasts b ${WAITING_JOIN}
      WHERE ($2::text[] IS NULL OR b.status = ANY($2)) AND ($3::bigint IS NULL OR b.broadcast_id < $3)
      ORDER BY b.broadcast_id DESC LIMIT $4`,
    [RATE_WINDOW_SECONDS, statuses, before, Math.floor(limit)],
  );
  return rows.map(progressOf);
}
