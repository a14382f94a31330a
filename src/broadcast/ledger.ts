import type { Pool, PoolClient } from '../db/pool.js';
import { DriverLostError, type ReasonCode } from '../errors.js';

/** Outcomes in the 'blocked' count: the 403 class. Every other permanent failure counts as 'failed'. */
export const BLOCKED_OUTCOMES = ['blocked', 'deactivated', 'kicked', 'chat_deleted'] as const;

export interface DueDelivery {
  chatId: number;
  /** Where to send: the chat itself, or the supergroup it migrated to. */
  targetChatId: number;
  variant: string | null;
  attempt: number;
  /**
   * The claim that marked the row 'sending': the claiming transaction's id, the row's xmin. Every
   * outcome carries it, so that it can only land on that claim (see LEDGER_RECORD_SQL).
   */
  claim: string;
}

/** What became of one ledger row's send. */
export interface DeliveryRecord {
  chatId: number;
  status: 'pending' | 'sent' | 'failed' | 'skipped' | 'unknown';
  outcome: string | null;
  messageId?: number | null;
  /** Telegram's HTTP status (the error_code column). */
  errorCode?: number | null;
  errorDescription?: string | null;
  /** Why the send failed, as a reason code (the error_reason column). */
  errorReason?: ReasonCode | null;
  /** For 'pending': try again in this many ms. */
  retryInMs?: number | null;
  migratedTo?: number | null;
  /** The call was not made (a pause, a halt): the attempt does not count. */
  refund?: boolean;
  /** DueDelivery.claim of the row's claim. Required with a Driver; tools that write directly may omit it. */
  claim?: string;
}

export interface BroadcastCounts {
  total: number;
  sent: number;
  failed: number;
  blocked: number;
  skipped: number;
  unknown: number;
}

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
const owned = (job: string, claimedAt: string) => `
  (${job}::bigint IS NULL OR EXISTS (
     SELECT 1 FROM broadcasts
      WHERE broadcast_id = $1 AND driver_job_id = ${job}::bigint AND driver_claimed_at = ${claimedAt}::timestamptz
        FOR KEY SHARE))`;

// Claims the next due rows, marking them 'sending' just before their calls: after a crash the
// rows still 'sending' are exactly the sends whose outcome is unknown. The picked keys go through
// an array (an InitPlan, run once) and the UPDATE finds them by primary key. Joined to the locking
// subquery instead, the plan depended on statistics: with the ledger ANALYZEd while it held only an
// earlier broadcast, PostgreSQL estimated one row for the new broadcast_id, put the ledger on the
// outside of a nested loop and re-ran the LIMIT … FOR UPDATE SKIP LOCKED subquery for every row
// (4.0 s for the first claim at 5,000 recipients; still running after 89 s at 50,000). A row
// handed back unsent kept its next_attempt_at, so it comes first. $3, $4: the driver (owned).
// The rest of an A/B test's audience (variant NULL) waits for the decision (ab-test.ts).
export const LEDGER_CLAIM_SQL = `
  UPDATE broadcast_deliveries d
     SET status = 'sending', attempts = d.attempts + 1, updated_at = now()
   WHERE d.broadcast_id = $1
     AND d.chat_id = ANY (ARRAY(
           SELECT chat_id FROM broadcast_deliveries
            WHERE broadcast_id = $1 AND status = 'pending' AND next_attempt_at <= now()
              AND ${owned('$3', '$4')}
              AND (variant IS NOT NULL OR NOT EXISTS (SELECT 1 FROM broadcasts WHERE broadcast_id = $1 AND ab_test IS NOT NULL AND ab_decided_at IS NULL))
            ORDER BY next_attempt_at
            LIMIT $2
              FOR UPDATE SKIP LOCKED))
  RETURNING d.chat_id, d.migrated_to, d.variant, d.attempts, d.xmin::text AS claim`;

// Writes a batch of outcomes and moves the broadcast's counters by the same amounts, in one
// statement, so the counters can never disagree with the ledger. The rows are found by primary key
// (`chat_id = ANY($2)`) and each takes its outcome from a JSON object keyed by chat_id (a binary
// search per row), so there is no join whose plan statistics could flip. Joined to an unnest of
// the outcomes, PostgreSQL took the ledger's side for one row (rows are 'sending' only between a
// claim and its outcome, so ANALYZE never sees them) and re-ran the unnest for every row: 960 ms
// for a batch of 800 at 50,000 recipients, or a bitmap heap scan of the whole broadcast
// (~57 ms a batch at 50,000), a cost that grew with the broadcast. $5, $6: the driver (owned); no
// row comes back when the run no longer drives the broadcast. The batch's sent messages are also
// added to this minute's count (sql/0009), which /statistics reads instead of the ledger.
// An outcome lands only on the claim it came from (d.xmin: only a claim or an outcome writes a
// 'sending' row, so its xmin is the claim's transaction). A write whose commit was acknowledged
// by a connection that died first is retried; without this check the retry of a handed-back row
// ('pending') could undo the row's next claim while that claim's call was out, and the row was
// sent again (test/broadcast/outcome-retry.test.ts; found tracing the chat that got a message twice
// in chaos database under --stress, seed 3101).
export const LEDGER_RECORD_SQL = `
  WITH written AS (
    UPDATE broadcast_deliveries d
       SET (status, outcome, message_id, error_code, error_description, error_reason, next_attempt_at, attempts, migrated_to, sent_at, updated_at) =
           (SELECT o.status, o.outcome, COALESCE(o.message_id, d.message_id), o.error_code, o.error_description, o.error_reason,
                   CASE WHEN o.retry_in_ms IS NULL THEN d.next_attempt_at ELSE now() + o.retry_in_ms * interval '1 millisecond' END,
                   CASE WHEN o.refund THEN d.attempts - 1 ELSE d.attempts END,
                   COALESCE(o.migrated_to, d.migrated_to),
                   CASE WHEN o.status = 'sent' THEN now() ELSE d.sent_at END,
                   now()
              FROM jsonb_to_record($3::jsonb -> d.chat_id::text)
                AS o(status text, outcome text, message_id bigint, error_code int, error_description text,
                     error_reason text, retry_in_ms float8, migrated_to bigint, refund boolean))
     WHERE d.broadcast_id = $1 AND d.chat_id = ANY ($2::bigint[]) AND d.status = 'sending'
       AND d.xmin::text = COALESCE($3::jsonb -> d.chat_id::text ->> 'claim', d.xmin::text)
       AND ${owned('$5', '$6')}
    RETURNING d.status, d.outcome
  ), counted AS (
    INSERT INTO broadcast_messages_sent (minute, messages)
    SELECT date_trunc('minute', now()), count(*) FROM written WHERE status = 'sent' HAVING count(*) > 0
  )
  UPDATE broadcasts b
     SET sent    = b.sent    + (SELECT count(*) FROM written WHERE status = 'sent'),
         blocked = b.blocked + (SELECT count(*) FROM written WHERE status = 'failed' AND outcome = ANY($4::text[])),
         failed  = b.failed  + (SELECT count(*) FROM written WHERE status = 'failed' AND NOT (outcome = ANY($4::text[]))),
         skipped = b.skipped + (SELECT count(*) FROM written WHERE status = 'skipped'),
         unknown = b.unknown + (SELECT count(*) FROM written WHERE status = 'unknown'),
         updated_at = now()
   WHERE b.broadcast_id = $1 AND ${owned('$5', '$6')}
  RETURNING (SELECT count(*) FROM written)::int AS written`;

/** The parameters of LEDGER_RECORD_SQL for one batch, guarded by `driver` when one is given. */
export function recordParams(broadcastId: number, records: DeliveryRecord[], driver?: Driver): unknown[] {
  const outcomes: Record<string, unknown> = {};
  for (const r of records) {
    outcomes[r.chatId] = {
      status: r.status,
      outcome: r.outcome,
      message_id: r.messageId ?? null,
      error_code: r.errorCode ?? null,
      error_description: r.errorDescription ?? null,
      error_reason: r.errorReason ?? null,
      retry_in_ms: r.status === 'pending' && r.retryInMs !== null && r.retryInMs !== undefined ? Math.max(0, r.retryInMs) : null,
      migrated_to: r.migratedTo ?? null,
      refund: r.refund ?? false,
      claim: r.claim ?? null,
    };
  }
  return [broadcastId, records.map((r) => r.chatId), JSON.stringify(outcomes), BLOCKED_OUTCOMES, driver?.jobId ?? null, driver?.claimedAt ?? null];
}

/**
 * Claims up to `limit` due rows. The engine passes its Driver and gets DriverLostError once another
 * run drives the broadcast; a bare broadcast id (tools, benchmarks) claims unguarded.
 */
export async function claimDue(pool: Pool, target: Driver | number, limit: number): Promise<DueDelivery[]> {
  const driver = typeof target === 'number' ? null : target;
  const broadcastId = driver ? driver.broadcastId : (target as number);
  const { rows } = await pool.query(LEDGER_CLAIM_SQL, [broadcastId, limit, driver?.jobId ?? null, driver?.claimedAt ?? null]);
  // Nothing claimed is also what a lost driver sees: only then is it worth a look (end of a run).
  if (rows.length === 0 && driver && !(await stillDrives(pool, driver))) throw new DriverLostError(driver);
  return rows.map((r) => ({ chatId: r.chat_id, targetChatId: r.migrated_to ?? r.chat_id, variant: r.variant, attempt: r.attempts, claim: r.claim }));
}

/** Writes outcomes; with a Driver, writes nothing and throws DriverLostError once it lost the broadcast. */
export async function recordDeliveries(pool: Pool, target: Driver | number, records: DeliveryRecord[]): Promise<number> {
  if (records.length === 0) return 0;
  const driver = typeof target === 'number' ? undefined : target;
  const unclaimed = driver && records.find((r) => r.claim === undefined);
  if (unclaimed) throw new Error(`the outcome of chat ${unclaimed.chatId} names no claim: a retried write could undo a later claim`);
  const { rows } = await pool.query(LEDGER_RECORD_SQL, recordParams(driver ? driver.broadcastId : (target as number), records, driver));
  if (!rows[0] && driver) throw new DriverLostError(driver);
  return rows[0]?.written ?? 0;
}

async function stillDrives(pool: Pool, driver: Driver): Promise<boolean> {
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
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
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
    await client.query('COMMIT');
    if (rows[0]) return { driver: { broadcastId, jobId, claimedAt: rows[0].claimed_at } };
    return { heldBy: b?.driver_job_id ?? null };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
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

const SKIP_PENDING_SQL = `
  WITH r AS (UPDATE broadcast_deliveries SET status = 'skipped', outcome = $2, updated_at = now()
              WHERE broadcast_id = $1 AND status = 'pending' AND ${owned('$3', '$4')} RETURNING 1)
  UPDATE broadcasts SET skipped = skipped + (SELECT count(*) FROM r), updated_at = now()
   WHERE broadcast_id = $1 AND ${owned('$3', '$4')} RETURNING (SELECT count(*) FROM r)::int AS n`;

/**
 * Marks every row not yet sent as skipped for `outcome`, counted in the broadcast's skipped. With a
 * driver, only while it still drives the broadcast (null then: it lost it); with none (an operator's
 * cancel while no engine runs it), unconditionally (null: no such broadcast).
 */
export async function skipPending(db: Pool | PoolClient, broadcastId: number, outcome: string, driver: Driver | null): Promise<number | null> {
  const { rows } = await db.query(SKIP_PENDING_SQL, [broadcastId, outcome, driver?.jobId ?? null, driver?.claimedAt ?? null]);
  return rows[0]?.n ?? null;
}

/** Marks every row not yet sent as skipped for `outcome` (cancelled, stopped). */
export async function skipRemaining(pool: Pool, driver: Driver, outcome: string): Promise<number> {
  const n = await skipPending(pool, driver.broadcastId, outcome, driver);
  if (n === null) throw new DriverLostError(driver);
  return n;
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

/** Milliseconds until the next pending row is due (0: now), or null when none is pending. */
export async function nextDueInMs(pool: Pool, broadcastId: number): Promise<number | null> {
  const { rows } = await pool.query(
    // GREATEST ignores NULLs, so the no-rows case must be kept apart from "due now".
    `SELECT CASE WHEN min(next_attempt_at) IS NULL THEN NULL
                 ELSE GREATEST(0, extract(epoch FROM min(next_attempt_at) - now()) * 1000)::float8 END AS ms
       FROM broadcast_deliveries WHERE broadcast_id = $1 AND status = 'pending'`,
    [broadcastId],
  );
  return rows[0].ms;
}

/** The final counts, from the ledger itself, with the same split per variant. */
export async function countDeliveries(pool: Pool, broadcastId: number): Promise<BroadcastCounts & { variants?: Record<string, BroadcastCounts> }> {
  const { rows } = await pool.query(
    `SELECT variant,
            count(*)::int AS total,
            count(*) FILTER (WHERE status = 'sent')::int AS sent,
            count(*) FILTER (WHERE status = 'failed' AND outcome = ANY($2::text[]))::int AS blocked,
            count(*) FILTER (WHERE status = 'failed' AND NOT (outcome = ANY($2::text[])))::int AS failed,
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
