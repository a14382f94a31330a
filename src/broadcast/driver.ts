import { inTransaction } from '../db/transaction.js';
import type { Pool } from '../db/pool.js';
import { DriverLostError } from '../errors.js';

// Which run drives a broadcast (sql/0005): one broadcast job's run at a time writes its ledger.
// A run takes the broadcast over when it starts (takeOver), recovers what a dead run left
// 'sending' (recoverInterrupted), and every ledger write after that checks it still drives (owned).

/**
 * One run of one broadcast job that holds its broadcast (sql/0005): the job and its claim's
 * started_at, as PostgreSQL wrote it (text round-trips to the microsecond).
 */
export interface Driver {
  broadcastId: number;
  jobId: number;
  claimedAt: string;
}

// True while the run named by the job and claim parameters still drives broadcast $1 (sql/0005),
// or when no run is named (a NULL job: tools and benchmarks that write a ledger directly). KEY
// SHARE makes a takeover in progress (FOR UPDATE) wait for this write, or this write for it, but
// does not wait for the counter updates of the driver's own writes. Uncorrelated: one InitPlan.
export const owned = (job: string, claimedAt: string) => `
  (${job}::bigint IS NULL OR EXISTS (
     SELECT 1 FROM broadcasts
      WHERE broadcast_id = $1 AND driver_job_id = ${job}::bigint AND driver_claimed_at = ${claimedAt}::timestamptz
        FOR KEY SHARE))`;

export async function stillDrives(pool: Pool, driver: Driver): Promise<boolean> {
  const { rows } = await pool.query(`SELECT ${owned('$2', '$3')} AS owned FROM broadcasts WHERE broadcast_id = $1`, [driver.broadcastId, driver.jobId, driver.claimedAt]);
  return rows[0]?.owned === true;
}

/**
 * Takes the broadcast over for this run of `jobId` unless another run drives it and is live (its
 * job still 'processing' under the same claim). Returns the driver, or the job that holds it.
 * The row lock comes first and the liveness check after it, in a statement of its own, so that
 * two jobs taking over at once see each other (READ COMMITTED: each statement a new snapshot).
 */
export async function takeOver(pool: Pool, broadcastId: number, jobId: number, attempt: number): Promise<{ driver: Driver } | { heldBy: number | null }> {
  return inTransaction(pool, async (client) => {
    const b = (await client.query('SELECT driver_job_id, driver_claimed_at FROM broadcasts WHERE broadcast_id = $1 FOR UPDATE', [broadcastId])).rows[0];
    const { rows } = await client.query(
      `WITH me AS (SELECT job_id, started_at FROM broadcast_queue_jobs WHERE job_id = $2 AND status = 'processing' AND attempts = $3),
       live AS (SELECT j.job_id FROM broadcasts b JOIN broadcast_queue_jobs j ON j.job_id = b.driver_job_id
                 WHERE b.broadcast_id = $1 AND j.status = 'processing' AND j.started_at = b.driver_claimed_at AND j.job_id <> $2)
       UPDATE broadcasts b SET driver_job_id = me.job_id, driver_claimed_at = me.started_at, job_id = me.job_id, updated_at = now()
         FROM me WHERE b.broadcast_id = $1 AND NOT EXISTS (SELECT 1 FROM live)
       RETURNING me.started_at::text AS claimed_at`,
      [broadcastId, jobId, attempt],
    );
    if (rows[0]) return { driver: { broadcastId, jobId, claimedAt: rows[0].claimed_at } };
    return { heldBy: b?.driver_job_id ?? null };
  });
}

/**
 * Rows left 'sending' by a run that died. At-most-once: their outcome is unknown and they are not
 * resent. At-least-once: they go back to pending and will be sent (perhaps a second time).
 */
export async function recoverInterrupted(pool: Pool, driver: Driver, atLeastOnce: boolean): Promise<number> {
  const params = [driver.broadcastId, driver.jobId, driver.claimedAt];
  const { rows } = atLeastOnce
    ? await pool.query(
        `WITH r AS (UPDATE broadcast_deliveries SET status = 'pending', next_attempt_at = now(), updated_at = now()
                WHERE broadcast_id = $1 AND status = 'sending' AND ${owned('$2', '$3')} RETURNING 1)
         SELECT count(*)::int AS n, ${owned('$2', '$3')} AS owned FROM r`,
        params,
      )
    : await pool.query(
        `WITH r AS (UPDATE broadcast_deliveries SET status = 'unknown', outcome = 'crashed', updated_at = now()
                WHERE broadcast_id = $1 AND status = 'sending' AND ${owned('$2', '$3')} RETURNING 1)
         UPDATE broadcasts SET unknown = unknown + (SELECT count(*) FROM r), updated_at = now()
          WHERE broadcast_id = $1 AND ${owned('$2', '$3')} RETURNING (SELECT count(*) FROM r)::int AS n, true AS owned`,
        params,
      );
  if (!rows[0]?.owned) throw new DriverLostError(driver);
  return rows[0].n;
}
