// Broadcast messages sent, read from the per-minute counts the ledger's outcome writes keep
// (broadcast_messages_sent, sql/0009): /statistics, the dashboard's chart, and the status bench.
import type { Pool, PoolClient } from '../db/pool.js';

// Broadcast messages sent in the last hour and 24 hours, from the per-minute counts the ledger's
// outcome writes keep (sql/0009): at most ~1,500 small rows, however big the day's broadcasts were.
export const MESSAGES_SENT_SQL = `
  SELECT COALESCE(sum(messages) FILTER (WHERE minute >= date_trunc('minute', now() - interval '1 hour')), 0)::int AS sent_1h,
         COALESCE(sum(messages), 0)::int AS sent_24h
    FROM broadcast_messages_sent
   WHERE minute >= date_trunc('minute', now() - interval '24 hours')`;

/** Broadcast messages sent in the last hour and 24 hours. */
export async function readMessagesSent(pool: Pool | PoolClient): Promise<{ lastHour: number; last24h: number }> {
  const { rows } = await pool.query(MESSAGES_SENT_SQL);
  return { lastHour: rows[0].sent_1h, last24h: rows[0].sent_24h };
}

/**
 * Broadcast messages sent per `bucketMinutes` over the last `hours`: [bucket start in epoch
 * seconds, messages], oldest first, empty buckets as zeros; from the per-minute counts (sql/0009).
 */
export async function messagesSentSeries(pool: Pool | PoolClient, hours: number, bucketMinutes: number): Promise<[number, number][]> {
  const { rows } = await pool.query(
    `WITH buckets AS (
       SELECT generate_series(date_bin($2::float8 * interval '1 minute', now() - $1::float8 * interval '1 hour', 'epoch'),
                              now(), $2::float8 * interval '1 minute') AS t),
     m AS (
       SELECT date_bin($2::float8 * interval '1 minute', minute, 'epoch') AS t, sum(messages) AS messages
         FROM broadcast_messages_sent WHERE minute >= now() - $1::float8 * interval '1 hour' - $2::float8 * interval '1 minute'
        GROUP BY 1)
     SELECT extract(epoch FROM b.t)::float8 AS t, COALESCE(m.messages, 0)::float8 AS messages
       FROM buckets b LEFT JOIN m USING (t) ORDER BY b.t`,
    [hours, bucketMinutes],
  );
  return rows.map((r) => [r.t, r.messages]);
}
