import type { Pool, PoolClient } from '../db/pool.js';
import { DriverLostError, type ReasonCode } from '../errors.js';
import { owned, stillDrives, type Driver } from './driver.js';

/** The 403 class's outcomes, by which a row failed before sql/0017 (no reason code) counts as blocked (blockedSql). */
export const BLOCKED_OUTCOMES = ['blocked', 'deactivated', 'kicked', 'chat_deleted'] as const;

// Whether a failed row counts as blocked rather than failed: its reason code is 'blocked' (the 403
// class, sql/0017), whatever Telegram's words were. A row failed before sql/0017 has no reason code
// and counts by its outcome, as it was counted when it failed, so an older broadcast's recount
// (countDeliveries) and a resend of its rows still agree with its counters. `outcomes`: the
// parameter that holds BLOCKED_OUTCOMES; `row`: the alias with its dot, if any.
export const blockedSql = (outcomes: string, row = '') =>
  `(CASE WHEN ${row}error_reason IS NOT NULL THEN ${row}error_reason = 'blocked' ELSE ${row}outcome = ANY(${outcomes}::text[]) END)`;

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
     SET status = 'sending', attempts = d.attempts + 1, claim_token = $5, updated_at = now()
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
    RETURNING d.status, d.outcome, d.error_reason
  ), counted AS (
    INSERT INTO broadcast_messages_sent (minute, messages)
    SELECT date_trunc('minute', now()), count(*) FROM written WHERE status = 'sent' HAVING count(*) > 0
  )
  UPDATE broadcasts b
     SET sent    = b.sent    + (SELECT count(*) FROM written WHERE status = 'sent'),
         blocked = b.blocked + (SELECT count(*) FROM written WHERE status = 'failed' AND ${blockedSql('$4')}),
         failed  = b.failed  + (SELECT count(*) FROM written WHERE status = 'failed' AND NOT ${blockedSql('$4')}),
         skipped = b.skipped + (SELECT count(*) FROM written WHERE status = 'skipped'),
         unknown = b.unknown + (SELECT count(*) FROM written WHERE status = 'unknown'),
         updated_at = now()
   WHERE b.broadcast_id = $1 AND ${owned('$5', '$6')}
  RETURNING (SELECT count(*) FROM written)::int AS written`;

/** blockedSql for a record about to be written (its label in metrics). */
export function countsAsBlocked(r: DeliveryRecord): boolean {
  if (r.status !== 'failed') return false;
  return r.errorReason !== null && r.errorReason !== undefined ? r.errorReason === 'blocked' : (BLOCKED_OUTCOMES as readonly string[]).includes(r.outcome ?? '');
}

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

/** A row of LEDGER_CLAIM_SQL's RETURNING list (or the same columns read back) as the engine uses it. */
const dueOf = (r: { chat_id: number; migrated_to: number | null; variant: string | null; attempts: number; claim: string }): DueDelivery =>
  ({ chatId: r.chat_id, targetChatId: r.migrated_to ?? r.chat_id, variant: r.variant, attempt: r.attempts, claim: r.claim });

/**
 * Claims up to `limit` due rows. The engine passes its Driver and gets DriverLostError once another
 * run drives the broadcast; a bare broadcast id (tools, benchmarks) claims unguarded. `token`
 * marks the rows (claim_token) so that they can be found should the answer be lost.
 */
export async function claimDue(pool: Pool, target: Driver | number, limit: number, token: number | null = null): Promise<DueDelivery[]> {
  const driver = typeof target === 'number' ? null : target;
  const broadcastId = driver ? driver.broadcastId : (target as number);
  const { rows } = await pool.query(LEDGER_CLAIM_SQL, [broadcastId, limit, driver?.jobId ?? null, driver?.claimedAt ?? null, token]);
  // Nothing claimed is also what a lost driver sees: only then is it worth a look (end of a run).
  if (rows.length === 0 && driver && !(await stillDrives(pool, driver))) throw new DriverLostError(driver);
  return rows.map(dueOf);
}

// Rows still 'sending' on the named claims ($4: claim_token values, sql/0026).
const UNANSWERED_SQL = `
  SELECT chat_id, migrated_to, variant, attempts, xmin::text AS claim FROM broadcast_deliveries
   WHERE broadcast_id = $1 AND status = 'sending' AND claim_token = ANY ($4::bigint[]) AND ${owned('$2', '$3')}`;

/**
 * The rows that claims of this run marked 'sending' although their answers never came (their
 * connection died after the commit), found by the tokens those claims wrote (claimDue's `token`).
 * Nothing was sent to them. Throws DriverLostError once another run drives the broadcast.
 */
export async function unansweredClaims(pool: Pool, driver: Driver, tokens: number[]): Promise<DueDelivery[]> {
  const { rows } = await pool.query(UNANSWERED_SQL, [driver.broadcastId, driver.jobId, driver.claimedAt, tokens]);
  if (rows.length === 0 && !(await stillDrives(pool, driver))) throw new DriverLostError(driver);
  return rows.map(dueOf);
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
