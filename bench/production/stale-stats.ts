// Claims and outcome writes against planner statistics that do not describe the data: the ledger
// ANALYZEd while it held only an earlier broadcast, then a new broadcast of N recipients. Prints the
// plan and the time of the ledger claim and of one batch of outcome writes, for the statements of
// main before issue 13 ("before") and for today's (src/broadcast/ledger.ts), and the plans of the
// jobs claim and the frequency-cap fan-out under the same conditions.
//
//   npx tsc -p tsconfig.json && node dist/bench/production/stale-stats.js [--recipients 50000] [--batch 100]
//
// DATABASE_URL: a server where it may create a database; without it an embedded PostgreSQL is
// started. The machine is shared: times are indicative, plans are the point.
import pg from 'pg';
import { parseArgs } from 'node:util';
import { openServer } from '../db.js';
import { migrate } from '../../src/db/migrate.js';
import { createPool } from '../../src/db/pool.js';
import { silentLogger } from '../../src/log.js';
import { LEDGER_CLAIM_SQL, LEDGER_RECORD_SQL, BLOCKED_OUTCOMES, recordParams as ledgerRecordParams } from '../../src/broadcast/ledger.js';
import { CLAIM_SQL as JOBS_CLAIM_SQL } from '../../src/queue/claimer.js';

// The statements as they were on main at 0cba422, for the before/after comparison.
const BEFORE_CLAIM_SQL = `
  UPDATE broadcast_deliveries d
     SET status = 'sending', attempts = d.attempts + 1, updated_at = now()
    FROM (SELECT chat_id FROM broadcast_deliveries
           WHERE broadcast_id = $1 AND status = 'pending' AND next_attempt_at <= now()
           ORDER BY next_attempt_at
           LIMIT $2
             FOR UPDATE SKIP LOCKED) due
   WHERE d.broadcast_id = $1 AND d.chat_id = due.chat_id
  RETURNING d.chat_id, d.migrated_to, d.variant, d.attempts`;
const BEFORE_RECORD_SQL = `
  WITH o AS (
    SELECT * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::int[], $7::text[], $8::float8[], $9::bigint[], $10::bool[])
      AS o(chat_id, status, outcome, message_id, error_code, error_description, retry_in_ms, migrated_to, refund)
  ), written AS (
    UPDATE broadcast_deliveries d
       SET status = o.status,
           outcome = o.outcome,
           message_id = COALESCE(o.message_id, d.message_id),
           error_code = o.error_code,
           error_description = o.error_description,
           next_attempt_at = CASE WHEN o.retry_in_ms IS NULL THEN d.next_attempt_at ELSE now() + o.retry_in_ms * interval '1 millisecond' END,
           attempts = CASE WHEN o.refund THEN d.attempts - 1 ELSE d.attempts END,
           migrated_to = COALESCE(o.migrated_to, d.migrated_to),
           sent_at = CASE WHEN o.status = 'sent' THEN now() ELSE d.sent_at END,
           updated_at = now()
      FROM o
     WHERE d.broadcast_id = $1 AND d.chat_id = o.chat_id AND d.status = 'sending'
    RETURNING d.status, d.outcome
  )
  UPDATE broadcasts b
     SET sent    = b.sent    + (SELECT count(*) FROM written WHERE status = 'sent'),
         blocked = b.blocked + (SELECT count(*) FROM written WHERE status = 'failed' AND outcome = ANY($11::text[])),
         failed  = b.failed  + (SELECT count(*) FROM written WHERE status = 'failed' AND NOT (outcome = ANY($11::text[]))),
         skipped = b.skipped + (SELECT count(*) FROM written WHERE status = 'skipped'),
         unknown = b.unknown + (SELECT count(*) FROM written WHERE status = 'unknown'),
         updated_at = now()
   WHERE b.broadcast_id = $1
  RETURNING (SELECT count(*) FROM written)::int AS written`;

const { values: args } = parseArgs({ options: { recipients: { type: 'string', default: '50000' }, batch: { type: 'string', default: '100' } } });
const recipients = Number(args.recipients);
const batch = Number(args.batch);

interface Measured { plan: string; ms: number | null; error?: string }

/** EXPLAIN ANALYZE inside a transaction that is rolled back, so every run sees the same data. */
async function explain(client: pg.ClientBase, sql: string, params: unknown[], prepare?: string, timeoutMs = 20_000): Promise<Measured> {
  await client.query('BEGIN');
  try {
    if (prepare) await client.query(prepare);
    await client.query(`SET LOCAL statement_timeout = ${timeoutMs}`);
    const { rows } = await client.query(`EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) ${sql}`, params);
    const lines = rows.map((r) => r['QUERY PLAN'] as string);
    const ms = Number(/Execution Time: ([\d.]+)/.exec(lines.join('\n'))?.[1]);
    return { plan: lines.filter((l) => !/Planning Time|Execution Time/.test(l)).join('\n'), ms };
  } catch (error) {
    const { rows } = await client.query('ROLLBACK').then(() => client.query(`EXPLAIN (COSTS OFF) ${sql}`, params));
    return { plan: rows.map((r) => r['QUERY PLAN']).join('\n'), ms: null, error: (error as Error).message };
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
  }
}

function show(title: string, m: Measured): void {
  console.log(`\n### ${title}: ${m.ms === null ? `did not finish (${m.error})` : `${m.ms.toFixed(2)} ms`}\n${m.plan}`);
}

function beforeParams(broadcastId: number, chatIds: number[]): unknown[] {
  const n = chatIds.length;
  const fill = <T>(v: T) => Array.from({ length: n }, () => v);
  return [broadcastId, chatIds, fill('sent'), fill(null), chatIds.map((c) => c + 1), fill(null), fill(null), fill(null), fill(null), fill(false), BLOCKED_OUTCOMES];
}

const afterParams = (broadcastId: number, chatIds: number[]) =>
  ledgerRecordParams(broadcastId, chatIds.map((chatId) => ({ chatId, status: 'sent' as const, outcome: null, messageId: chatId + 1 })));

async function main(): Promise<void> {
  const server = await openServer();
  const name = await server.createDatabase('stale_stats');
  const pool = createPool({ connectionString: server.urlFor(name), max: 2, applicationName: 'bq-bench-stale-stats', log: silentLogger() });
  const client = await pool.connect();
  try {
    await migrate(pool, silentLogger());
    console.log(`PostgreSQL ${server.version} (${server.origin}); ${recipients} recipients, batches of ${batch}`);
    // An earlier broadcast, fully sent, is what the statistics know.
    await client.query(`INSERT INTO broadcasts (broadcast_id, message, status) VALUES (1, '{"text":"earlier"}', 'completed'), (2, '{"text":"new"}', 'sending')`);
    await client.query(`INSERT INTO broadcast_deliveries (broadcast_id, chat_id, status, sent_at)
                        SELECT 1, g, 'sent', now() - interval '2 days' FROM generate_series(1, $1::int) g`, [recipients]);
    await client.query('ANALYZE broadcast_deliveries');
    await client.query(`INSERT INTO broadcast_deliveries (broadcast_id, chat_id) SELECT 2, g FROM generate_series(1, $1::int) g`, [recipients]);

    show('ledger claim, before (statistics from the earlier broadcast)', await explain(client, BEFORE_CLAIM_SQL, [2, batch]));
    show('ledger claim, after (statistics from the earlier broadcast)', await explain(client, LEDGER_CLAIM_SQL, [2, batch, null, null, null]));

    // Outcome writes for the last batch of the broadcast (its "millionth" recipients), after fresh statistics.
    const last = Array.from({ length: batch }, (_, i) => recipients - batch + 1 + i);
    const first = Array.from({ length: batch }, (_, i) => 1 + i);
    const sending = (ids: number[]) => `UPDATE broadcast_deliveries SET status = 'sending' WHERE broadcast_id = 2 AND chat_id IN (${ids.join(',')})`;
    await client.query('ANALYZE broadcast_deliveries');
    show('outcome write of the last batch, before (fresh statistics)', await explain(client, BEFORE_RECORD_SQL, beforeParams(2, last), sending(last)));
    show('outcome write of the last batch, after (fresh statistics)', await explain(client, LEDGER_RECORD_SQL, afterParams(2, last), sending(last)));
    show('outcome write of the first batch, after (fresh statistics)', await explain(client, LEDGER_RECORD_SQL, afterParams(2, first), sending(first)));
    show('ledger claim, after (fresh statistics)', await explain(client, LEDGER_CLAIM_SQL, [2, batch, null, null, null]));

    // The jobs claim: statistics taken while the table was empty, then a burst of 20,000 jobs.
    await client.query('ANALYZE broadcast_queue_jobs');
    await client.query(`INSERT INTO broadcast_queue_jobs (job_type, payload) SELECT 'send', jsonb_build_object('chat_id', g) FROM generate_series(1, 20000) g`);
    show('jobs claim of 250 (statistics from the empty table)', await explain(client, JOBS_CLAIM_SQL, [['broadcasts'], ['send', 'broadcast'], 250, 'bench']));

    // The frequency cap's per-recipient count during a fan-out of the new broadcast's audience.
    await client.query(`INSERT INTO broadcast_subscribers (chat_id) SELECT g FROM generate_series(1, $1::int) g`, [recipients]);
    await client.query(`UPDATE broadcast_deliveries SET sent_at = now() - interval '1 hour' WHERE broadcast_id = 1`);
    await client.query('ANALYZE broadcast_subscribers');
    show('frequency-cap fan-out (statistics from the earlier broadcast)', await explain(client,
      `SELECT count(*) FILTER (WHERE (SELECT count(*) FROM broadcast_deliveries x
                                        WHERE x.chat_id = r.chat_id AND x.status = 'sent' AND x.sent_at > now() - interval '24 hours') >= 1)
         FROM broadcast_subscribers r`, []));
  } finally {
    client.release();
    await pool.end();
    await server.close();
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
