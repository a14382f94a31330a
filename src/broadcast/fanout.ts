import type { Pool } from '../db/pool.js';
import { PayloadError, DriverLostError } from '../errors.js';
import { parseMessage } from '../telegram/message.js';
import { buildAudienceQuery, overFrequencyCapSql, unsendableOutcomeSql } from './audience.js';
import { localDueSql, parseDeliverAtLocal } from './local-time.js';
import { AB_SAMPLE_SQL, abSampleParams, parseAbTest } from './ab-test.js';
import { type Driver } from './driver.js';
import type { BroadcastRow, Variant } from './broadcasts-store.js';

export { FINAL_STATUSES, loadBroadcast, type BroadcastRow, type Variant } from './broadcasts-store.js';

/** Checks what a broadcast will send before the first call; a bad message fails the job at once. */
export function validateContent(b: Pick<BroadcastRow, 'message' | 'variants'>, path = 'broadcast'): void {
  if (b.variants) {
    if (!Array.isArray(b.variants) || b.variants.length === 0) throw new PayloadError(`${path}.variants must be a non-empty array`);
    const names = new Set<string>();
    b.variants.forEach((v, i) => {
      const at = `${path}.variants[${i}]`;
      if (typeof v !== 'object' || v === null) throw new PayloadError(`${at} must be an object with name, weight and message`);
      if (typeof v.name !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(v.name)) throw new PayloadError(`${at}.name must be 1 to 64 letters, digits, _ or -`);
      if (names.has(v.name)) throw new PayloadError(`${at}.name "${v.name}" is used twice`);
      names.add(v.name);
      if (!Number.isInteger(v.weight) || v.weight < 1 || v.weight > 1_000_000) throw new PayloadError(`${at}.weight must be a whole number from 1 to 1000000`);
      parseMessage(v.message, `${at}.message`);
    });
  } else {
    parseMessage(b.message, `${path}.message`);
  }
}

/**
 * An inline broadcast (message + chat_ids or audience in the job payload) gets a broadcasts row
 * of its own. The job's payload is rewritten to point at it in the same transaction, so a retry
 * or a rescue resumes that broadcast instead of creating a second one.
 */
export async function createInlineBroadcast(pool: Pool, jobId: number, payload: Record<string, unknown>): Promise<number> {
  const audience = payload.chat_ids !== undefined ? { ...(payload.audience as object | undefined), chat_ids: payload.chat_ids } : (payload.audience ?? {});
  const { rows } = await pool.query(
    `WITH b AS (
       INSERT INTO broadcasts (title, message, variants, audience, frequency_cap, allow_paid_broadcast, track, deliver_at_local, default_time_zone, ab_test, status, job_id)
       VALUES ($2, $3, $4, $5, $6, COALESCE($7, false), COALESCE($8, false), $9, COALESCE($10, 'UTC'), $11, 'queued', $1)
       RETURNING broadcast_id)
     UPDATE broadcast_queue_jobs j
        SET payload = jsonb_build_object('broadcast_id', b.broadcast_id, 'inline', true), updated_at = now()
       FROM b WHERE j.job_id = $1 AND j.status = 'processing'
     RETURNING b.broadcast_id`,
    [jobId, payload.title ?? null, payload.message ?? null, payload.variants ? JSON.stringify(payload.variants) : null, JSON.stringify(audience), payload.frequency_cap ?? null, payload.allow_paid_broadcast ?? null, payload.track ?? null,
      payload.deliver_at_local ?? null, payload.default_time_zone ?? null, payload.ab_test ? JSON.stringify(payload.ab_test) : null],
  ).catch((error) => {
    // A zone Intl knows and this server's tzdata does not: the payload, not the daemon, is at fault.
    if ((error as { code?: string }).code === '22023') throw new PayloadError(`payload.default_time_zone: ${(error as Error).message}`);
    throw error;
  });
  if (!rows[0]) throw new Error(`job ${jobId} is no longer held by this daemon`);
  return rows[0].broadcast_id;
}

/**
 * Materialises the audience into the ledger with one INSERT … SELECT (never loaded into memory),
 * once: the broadcast row is locked and started_at marks it done. Opted-out, unreachable and
 * over-the-cap recipients get 'skipped' rows with their reason, so every recipient is counted.
 * With deliver_at_local, each row is due at that time in the recipient's zone (local-time.ts),
 * counted from `now` (the database's clock unless given: tests).
 */
export async function fanOut(pool: Pool, b: BroadcastRow, by: Driver | number, now?: Date): Promise<{ total: number; skipped: number } | null> {
  const local = parseDeliverAtLocal(b.deliver_at_local, 'broadcast.deliver_at_local');
  const ab = parseAbTest(b.ab_test, b, 'broadcast.ab_test');
  // The engine passes its Driver; a bare job id (tools, benchmarks) fans out unguarded.
  const driver = typeof by === 'number' ? null : by;
  const jobId = driver ? driver.jobId : (by as number);
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const locked = await client.query(
      `SELECT started_at, ($2::bigint IS NULL OR (driver_job_id = $2::bigint AND driver_claimed_at = $3::timestamptz)) AS owned
         FROM broadcasts WHERE broadcast_id = $1 FOR UPDATE`,
      [b.broadcast_id, driver?.jobId ?? null, driver?.claimedAt ?? null],
    );
    if (driver && !locked.rows[0]?.owned) throw new DriverLostError(driver);
    if (locked.rows[0].started_at) {
      await client.query('ROLLBACK');
      return null;
    }
    const params: unknown[] = [b.broadcast_id];
    const capParam = b.frequency_cap ? params.push(b.frequency_cap) : 0;
    // A/B test: every row is held (no variant, due at the decision) until the sample is drawn below.
    const variantSql = ab ? 'NULL' : variantExpression(b.variants ?? null, params);
    let due = '';
    if (ab) {
      params.push(ab.decideAfterMs);
      due = `now() + $${params.length}::float8 * interval '1 millisecond'`;
    } else if (local) {
      params.push(b.default_time_zone);
      due = localDueSql(local, `COALESCE(r.time_zone, $${params.length}::text)`, now ?? null, params);
    }
    const audience = buildAudienceQuery(b.audience, params.length + 1);
    params.push(...audience.params);
    const overCap = capParam
      ? overFrequencyCapSql(`$${capParam}`)
      : 'false';
    const inserted = await client.query(
      `WITH ins AS (
         INSERT INTO broadcast_deliveries (broadcast_id, chat_id, status, outcome, variant${due ? ', next_attempt_at' : ''})
         SELECT $1, r.chat_id,
                CASE WHEN ${unsendableOutcomeSql('r')} IS NOT NULL OR ${overCap} THEN 'skipped' ELSE 'pending' END,
                COALESCE(${unsendableOutcomeSql('r')}, CASE WHEN ${overCap} THEN 'frequency_cap' END),
                ${variantSql}${due ? `, ${due}` : ''}
           FROM ${audience.from}
         ON CONFLICT (broadcast_id, chat_id) DO NOTHING
         RETURNING status)
       SELECT count(*)::int AS total, count(*) FILTER (WHERE status = 'skipped')::int AS skipped FROM ins`,
      params,
    );
    const { total, skipped } = inserted.rows[0];
    if (ab) await client.query(AB_SAMPLE_SQL, abSampleParams(b.broadcast_id, ab, b.variants!));
    await client.query(
      `UPDATE broadcasts SET total = $2, skipped = $3, status = CASE WHEN status IN ('draft', 'queued') THEN 'sending' ELSE status END,
              started_at = now(), job_id = $4, updated_at = now(),
              ab_decide_at = CASE WHEN $5::float8 IS NULL THEN NULL ELSE now() + $5::float8 * interval '1 millisecond' END
        WHERE broadcast_id = $1`,
      [b.broadcast_id, total, skipped, jobId, ab?.decideAfterMs ?? null],
    );
    await client.query('COMMIT');
    return { total, skipped };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

/** Deterministic per chat: the same chat always lands in the same variant of a broadcast. */
function variantExpression(variants: Variant[] | null, params: unknown[]): string {
  if (!variants?.length) return 'NULL';
  const totalWeight = variants.reduce((sum, v) => sum + v.weight, 0);
  params.push(totalWeight);
  const bucket = `((hashint8extended(r.chat_id, $1) % $${params.length}) + $${params.length}) % $${params.length}`;
  let cumulative = 0;
  const branches = variants.map((v) => {
    cumulative += v.weight;
    params.push(cumulative, v.name);
    return `WHEN ${bucket} < $${params.length - 1} THEN $${params.length}::text`;
  });
  return `CASE ${branches.join(' ')} END`;
}
