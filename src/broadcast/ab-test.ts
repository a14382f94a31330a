// Test, then send the winner (sql/0024): the fan-out sends a broadcast's variants to a random sample
// and holds the rest (variant NULL, due at ab_decide_at); at that moment the run that drives the
// broadcast decides once, by the report's test on the sample (engagement/report.ts), and the rest
// get the winner, or the fallback when no variant won.
import { inTransaction } from '../db/transaction.js';
import type { Pool } from '../db/pool.js';
import { DriverLostError, PayloadError } from '../errors.js';
import { AB_METRICS, abTest, broadcastReport, type AbMetric } from '../engagement/report.js';
import { describeValue } from '../telegram/message.js';
import { unsendableOutcomeSql } from './audience.js';
import type { Driver } from './driver.js';

const METRIC_NAMES = Object.keys(AB_METRICS) as AbMetric[];

export interface AbTest {
  samplePercent: number;
  metric: AbMetric;
  decideAfterMs: number;
  /** The variant the rest get when no variant won; the first variant when not given. */
  fallback: string;
}

export interface AbDecision {
  winner: string | null;
  pValue: number | null;
  sentVariant: string;
  decidedAt: Date;
}

const UNIT_MS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const MAX_DECIDE_AFTER_MS = 30 * 86_400_000;

/** "90s", "30m", "2h", "1d" (or "1h30m") as milliseconds; null when it is no such duration. */
export function parseDecideAfter(value: unknown): number | null {
  if (typeof value !== 'string' || !/^(\d+[smhd])+$/.test(value.trim())) return null;
  let ms = 0;
  for (const [, n, unit] of value.trim().matchAll(/(\d+)([smhd])/g)) ms += Number(n) * UNIT_MS[unit!]!;
  return ms >= 1_000 && ms <= MAX_DECIDE_AFTER_MS ? ms : null;
}

/**
 * Reads a broadcast's ab_test; null when absent. It needs two or more variants to compare, tracked
 * links to count clicks on, and sends at once (not at each recipient's local time).
 */
export function parseAbTest(
  value: unknown,
  b: { variants?: unknown; track?: unknown; deliver_at_local?: unknown },
  path: string,
): AbTest | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'object' || Array.isArray(value)) throw new PayloadError(`${path} must be an object like {"sample_percent": 10, "metric": "ctr", "decide_after": "2h", "fallback": "A"}, got ${describeValue(value)}`);
  const a = value as Record<string, unknown>;
  const unknownKey = Object.keys(a).find((k) => !['sample_percent', 'metric', 'decide_after', 'fallback'].includes(k));
  if (unknownKey) throw new PayloadError(`${path} has an unknown field "${unknownKey}" (known: sample_percent, metric, decide_after, fallback)`);
  const samplePercent = a.sample_percent;
  if (!Number.isInteger(samplePercent) || (samplePercent as number) < 1 || (samplePercent as number) > 50) {
    throw new PayloadError(`${path}.sample_percent must be a whole number from 1 to 50 (the share of the audience that tests the variants), got ${describeValue(samplePercent)}`);
  }
  const metric = a.metric ?? 'ctr';
  if (typeof metric !== 'string' || !Object.hasOwn(AB_METRICS, metric)) throw new PayloadError(`${path}.metric must be one of ${METRIC_NAMES.join(', ')} (what the report's test compares: click-through, reply, opt-out or block rate), got ${describeValue(metric)}`);
  const decideAfterMs = parseDecideAfter(a.decide_after);
  if (decideAfterMs === null) throw new PayloadError(`${path}.decide_after must be a duration from 1s to 30d such as "90s", "30m", "2h" or "1h30m", got ${describeValue(a.decide_after)}`);
  const names = Array.isArray(b.variants) ? b.variants.map((v) => (v as { name?: unknown })?.name) : [];
  if (names.length < 2) throw new PayloadError(`${path} needs two or more variants to compare, got ${names.length}`);
  if (b.track !== true) throw new PayloadError(`${path} needs track: true: the test counts clicks on tracked links`);
  if (b.deliver_at_local !== undefined && b.deliver_at_local !== null) throw new PayloadError(`${path} cannot be combined with deliver_at_local`);
  const fallback = a.fallback ?? names[0];
  if (typeof fallback !== 'string' || !names.includes(fallback)) throw new PayloadError(`${path}.fallback must name one of the variants (${names.join(', ')}), got ${describeValue(a.fallback)}`);
  return { samplePercent: samplePercent as number, metric: metric as AbTest['metric'], decideAfterMs, fallback };
}

/**
 * The fan-out's second statement (same transaction, after every row was written with variant NULL
 * and due at ab_decide_at): picks the sample, ceil(sample_percent % of the pending rows) in a
 * random order seeded by the broadcast (its own hash seed, so that it does not line up with
 * anything else), and deals the variants to it in turn by weight, so each gets its exact share.
 * $1 broadcast, $2 percent, $3 total weight, $4 the cumulative weights, $5 the names.
 */
export const AB_SAMPLE_SQL = `
  WITH sample AS (
    SELECT chat_id, row_number() OVER (ORDER BY hashint8extended(chat_id, -$1::bigint), chat_id) - 1 AS n
      FROM broadcast_deliveries WHERE broadcast_id = $1 AND status = 'pending'
     ORDER BY hashint8extended(chat_id, -$1::bigint), chat_id
     LIMIT (SELECT ceil(count(*) * $2::numeric / 100) FROM broadcast_deliveries WHERE broadcast_id = $1 AND status = 'pending'))
  UPDATE broadcast_deliveries d
     SET variant = ($5::text[])[(SELECT min(i) FROM generate_subscripts($4::int[], 1) i WHERE s.n % $3 < ($4::int[])[i])],
         next_attempt_at = now()
    FROM sample s
   WHERE d.broadcast_id = $1 AND d.chat_id = s.chat_id`;

export function abSampleParams(broadcastId: number, ab: AbTest, variants: { name: string; weight: number }[]): unknown[] {
  let cumulative = 0;
  const bounds = variants.map((v) => (cumulative += v.weight));
  return [broadcastId, ab.samplePercent, cumulative, bounds, variants.map((v) => v.name)];
}

/** Milliseconds until the decision is due (0: now), by the database's clock. */
export async function abDecideInMs(pool: Pool, broadcastId: number): Promise<number> {
  const { rows } = await pool.query('SELECT GREATEST(0, extract(epoch FROM ab_decide_at - now()) * 1000)::float8 AS ms FROM broadcasts WHERE broadcast_id = $1', [broadcastId]);
  return rows[0]?.ms ?? 0;
}

/** The decision already made, or null. */
export async function loadAbDecision(pool: Pool, broadcastId: number): Promise<AbDecision | null> {
  const { rows } = await pool.query('SELECT ab_winner, ab_p_value, ab_sent_variant, ab_decided_at FROM broadcasts WHERE broadcast_id = $1 AND ab_decided_at IS NOT NULL', [broadcastId]);
  return rows[0] ? decision(rows[0]) : null;
}

const decision = (r: Record<string, any>): AbDecision => ({ winner: r.ab_winner, pValue: r.ab_p_value, sentVariant: r.ab_sent_variant, decidedAt: r.ab_decided_at });

// The rest were fanned out hours ago: who opted out or became unreachable (blocked the bot, a 403
// from another broadcast) since is skipped now, with the fan-out's rule and outcome, and counted.
const SKIP_UNSENDABLE_REST_SQL = `
  WITH skipped AS (
    UPDATE broadcast_deliveries d SET status = 'skipped', outcome = ${unsendableOutcomeSql('s')}, updated_at = now()
      FROM broadcast_subscribers s
     WHERE d.broadcast_id = $1 AND d.variant IS NULL AND d.status = 'pending'
       AND s.chat_id = d.chat_id AND ${unsendableOutcomeSql('s')} IS NOT NULL
    RETURNING 1)
  UPDATE broadcasts SET skipped = skipped + (SELECT count(*) FROM skipped) WHERE broadcast_id = $1
  RETURNING (SELECT count(*) FROM skipped)::int AS n`;

/**
 * Decides once the moment has come: null before it. The test runs on the report of the sample
 * (the rest's rows have no variant) with the test's metric, and the decision is written under the
 * broadcast's row lock, only while `driver` drives it and only if no decision is there yet, so two
 * daemons, or a run taken over midway, decide once; a later call returns the decision made. The
 * same transaction writes the metric into ab_test (a default made explicit, for the broadcast
 * record and webhook) and skips those of the rest who can no longer be sent to (`skipped`).
 */
export async function decideAbTest(pool: Pool, driver: Driver, ab: AbTest): Promise<{ decision: AbDecision; now: boolean; skipped: number } | null> {
  return inTransaction(pool, async (client) => {
    const { rows } = await client.query(
      `SELECT ab_decide_at <= now() AS due, ab_decided_at, ab_winner, ab_p_value, ab_sent_variant FROM broadcasts
        WHERE broadcast_id = $1 AND driver_job_id = $2 AND driver_claimed_at = $3::timestamptz FOR UPDATE`,
      [driver.broadcastId, driver.jobId, driver.claimedAt],
    );
    if (!rows[0]) throw new DriverLostError(driver);
    if (rows[0].ab_decided_at) return { decision: decision(rows[0]), now: false, skipped: 0 };
    if (!rows[0].due) return null;
    // Read outside the lock's transaction: the sample's outcomes and clicks are others' writes.
    const report = await broadcastReport(pool, driver.broadcastId);
    const test = abTest(report?.variants ?? [], ab.metric);
    const written = await client.query(
      `UPDATE broadcasts SET ab_decided_at = now(), ab_winner = $2, ab_p_value = $3, ab_sent_variant = $4,
              ab_test = ab_test || jsonb_build_object('metric', $5::text), updated_at = now()
        WHERE broadcast_id = $1 RETURNING ab_winner, ab_p_value, ab_sent_variant, ab_decided_at`,
      [driver.broadcastId, test.winner, test.pValue, test.winner ?? ab.fallback, ab.metric],
    );
    const skipped = await client.query(SKIP_UNSENDABLE_REST_SQL, [driver.broadcastId]);
    return { decision: decision(written.rows[0]), now: true, skipped: skipped.rows[0].n };
  });
}
