// One day's retention pass in the history bench (history.ts), measured as production would see it:
// its time, the WAL it writes, the dead tuples it leaves for autovacuum, and — when a sender runs
// beside it — whether that sender's ledger claims ever waited on a lock.
import type { Pool } from '../../src/db/pool.js';
import { claimDue, recordDeliveries } from '../../src/broadcast/ledger.js';
import { deleteOldBroadcasts } from '../../src/broadcast/retention.js';

export const SENDER_APP = 'bench history sender';

export interface LedgerState {
  deadTuples: number;
  liveTuples: number;
  autovacuums: number;
  autoanalyzes: number;
  /** Heap and indexes, bytes. */
  bytes: number;
}

export interface PassResult {
  ms: number;
  broadcasts: number;
  rows: number;
  walBytes: number;
  before: LedgerState;
  after: LedgerState;
  /** Only when a sender ran beside the pass. */
  sender?: { claims: number; claimMs: number[]; lockWaitSamples: number; samples: number };
}

export async function ledgerState(pool: Pool): Promise<LedgerState> {
  const { rows } = await pool.query(
    `SELECT n_dead_tup, n_live_tup, autovacuum_count, autoanalyze_count, pg_total_relation_size(relid) AS bytes
       FROM pg_stat_user_tables WHERE relname = 'broadcast_deliveries'`,
  );
  const r = rows[0];
  return { deadTuples: Number(r.n_dead_tup), liveTuples: Number(r.n_live_tup), autovacuums: Number(r.autovacuum_count), autoanalyzes: Number(r.autoanalyze_count), bytes: Number(r.bytes) };
}

async function walLsn(pool: Pool): Promise<string> {
  return (await pool.query('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0].lsn;
}

/**
 * A broadcast being sent while the pass runs: claims of 200 and their outcomes, as the engine
 * writes them, through its own pool (application_name SENDER_APP) so that a sampler can tell
 * whether any of its statements waits on a lock. A drained broadcast is followed by a new one;
 * they are all deleted at the end so that the next day's ledger is as before.
 */
async function sendBeside(senderPool: Pool, pool: Pool, live: number, stop: () => boolean): Promise<{ claims: number; claimMs: number[] }> {
  const claimMs: number[] = [];
  const ids: number[] = [];
  const newBroadcast = async () => {
    const { rows } = await pool.query(
      `WITH b AS (INSERT INTO broadcasts (title, message, status, started_at) VALUES ('beside retention', '{"text": "now"}', 'sending', now()) RETURNING broadcast_id)
       INSERT INTO broadcast_deliveries (broadcast_id, chat_id) SELECT b.broadcast_id, g FROM b, generate_series(1, $1) g RETURNING broadcast_id`,
      [live],
    );
    ids.push(Number(rows[0].broadcast_id));
  };
  await newBroadcast();
  while (!stop()) {
    const id = ids.at(-1)!;
    const start = performance.now();
    const due = await claimDue(senderPool, id, 200);
    if (due.length === 0) {
      await newBroadcast();
      continue;
    }
    claimMs.push(performance.now() - start);
    await recordDeliveries(senderPool, id, due.map((d) => ({ chatId: d.chatId, status: 'sent' as const, outcome: null, messageId: d.chatId })));
  }
  for (const id of ids) {
    await pool.query('DELETE FROM broadcast_deliveries WHERE broadcast_id = $1', [id]);
    await pool.query('DELETE FROM broadcasts WHERE broadcast_id = $1', [id]);
  }
  return { claims: claimMs.length, claimMs };
}

/**
 * Runs the daemon's retention as it would run on simulated day `age` days before the real today:
 * everything older than `retentionDays` before that day goes. With `senderPool`, a sender runs
 * beside it and pg_stat_activity is sampled every 20 ms for its lock waits.
 */
export async function retentionPass(pool: Pool, retentionDays: number, age: number, opts: { senderPool?: Pool; live: number }): Promise<PassResult> {
  const before = await ledgerState(pool);
  const lsn0 = await walLsn(pool);
  let done = false;
  let samples = 0;
  let lockWaitSamples = 0;
  const sampler = (async () => {
    if (!opts.senderPool) return;
    while (!done) {
      const { rows } = await pool.query(
        `SELECT count(*) FILTER (WHERE wait_event_type = 'Lock')::int AS waiting FROM pg_stat_activity WHERE application_name = $1`,
        [SENDER_APP],
      );
      samples++;
      lockWaitSamples += rows[0].waiting;
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const sender = opts.senderPool ? sendBeside(opts.senderPool, pool, opts.live, () => done) : null;
  const start = performance.now();
  const r = await deleteOldBroadcasts(pool, retentionDays + age).finally(() => (done = true));
  const ms = performance.now() - start;
  // WAL up to here: the sender's last batch may add a little, its clean-up comes after.
  const lsn1 = await walLsn(pool);
  await sampler;
  const sent = await sender;
  const walBytes = Number((await pool.query('SELECT pg_wal_lsn_diff($1, $2)::float8 AS d', [lsn1, lsn0])).rows[0].d);
  const after = await ledgerState(pool);
  return {
    ms,
    broadcasts: r.broadcasts,
    rows: r.deliveries,
    walBytes,
    before,
    after,
    ...(sent ? { sender: { ...sent, lockWaitSamples, samples } } : {}),
  };
}
