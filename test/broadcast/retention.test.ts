// History retention (broadcast/retention.ts): what goes, what stays, and that a sender never waits on it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { claimDue, recordDeliveries } from '../../src/broadcast/ledger.js';
import { deleteLedgerBatch, deleteOldBroadcasts, historyRetention } from '../../src/broadcast/retention.js';
import { Maintenance } from '../../src/queue/maintenance.js';
import { silentLogger } from '../../src/log.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

interface Seed {
  status: string;
  finishedAgo: string | null;
  rows: number;
  rowStatus?: string;
  jobStatus?: string;
}

/** A broadcast with `rows` ledger rows (chat ids 1…rows), finished that long ago, and its job. */
async function seed(db: TestDatabase, s: Seed): Promise<number> {
  const { rows } = await db.pool.query(
    `WITH j AS (INSERT INTO broadcast_queue_jobs (job_type, payload, status, locked_by, finished_at)
                VALUES ('broadcast', '{}', $3, CASE WHEN $3 = 'processing' THEN 'test-daemon' END, CASE WHEN $3 IN ('completed', 'failed', 'cancelled') THEN now() END) RETURNING job_id)
     INSERT INTO broadcasts (title, message, status, job_id, created_at, finished_at, updated_at)
     SELECT 'seed', '{"text": "hi"}', $1, j.job_id,
            now() - COALESCE($2::interval, '0'), now() - $2::interval, now() - COALESCE($2::interval, '0')
       FROM j RETURNING broadcast_id`,
    [s.status, s.finishedAgo, s.jobStatus ?? (['completed', 'cancelled', 'failed'].includes(s.status) ? 'completed' : 'processing')],
  );
  const id = Number(rows[0].broadcast_id);
  const rowStatus = s.rowStatus ?? 'sent';
  await db.pool.query(
    `INSERT INTO broadcast_deliveries (broadcast_id, chat_id, status, sent_at)
     SELECT $1, g, $3, CASE WHEN $3 = 'sent' THEN now() - COALESCE($4::interval, '0') END FROM generate_series(1, $2) g`,
    [id, s.rows, rowStatus, s.finishedAgo],
  );
  return id;
}

async function ledgerCount(db: TestDatabase, id: number): Promise<number> {
  return Number((await db.pool.query('SELECT count(*) AS n FROM broadcast_deliveries WHERE broadcast_id = $1', [id])).rows[0].n);
}

async function exists(db: TestDatabase, id: number): Promise<boolean> {
  return (await db.pool.query('SELECT 1 FROM broadcasts WHERE broadcast_id = $1', [id])).rowCount === 1;
}

test('old finished broadcasts go with their ledger; recent, running and still-driven ones stay', async () => {
  const db = await createTestDatabase();
  try {
    const old = await seed(db, { status: 'completed', finishedAgo: '3 days', rows: 2_345 });
    const oldFailed = await seed(db, { status: 'failed', finishedAgo: '40 days', rows: 10 });
    // Sent 2 hours ago: the frequency cap counts these rows for another 22 hours.
    const recent = await seed(db, { status: 'completed', finishedAgo: '2 hours', rows: 300 });
    const running = await seed(db, { status: 'sending', finishedAgo: null, rows: 400, rowStatus: 'pending' });
    const paused = await seed(db, { status: 'paused', finishedAgo: null, rows: 50, rowStatus: 'pending', jobStatus: 'pending' });
    await db.pool.query(`UPDATE broadcasts SET created_at = now() - interval '60 days', updated_at = now() - interval '60 days' WHERE broadcast_id IN ($1, $2)`, [running, paused]);
    // Cancelled long ago, but its job is still winding down: its rows may still be written.
    const windingDown = await seed(db, { status: 'cancelled', finishedAgo: '10 days', rows: 20, jobStatus: 'processing' });

    // The lowest chat id the schema allows (a group's negative id) is deleted like any other.
    await db.pool.query(`INSERT INTO broadcast_deliveries (broadcast_id, chat_id, status) VALUES ($1, -9007199254740991, 'failed')`, [old]);
    const result = await deleteOldBroadcasts(db.pool, 1, { batch: 1_000 });
    assert.equal(result, { broadcasts: 2, deliveries: 2_356 });
    assert.is(await exists(db, old), false);
    assert.is(await exists(db, oldFailed), false);
    assert.is(await ledgerCount(db, old), 0);
    for (const [id, rows] of [[recent, 300], [running, 400], [paused, 50], [windingDown, 20]] as const) {
      assert.ok(await exists(db, id), `broadcast ${id} was deleted`);
      assert.is(await ledgerCount(db, id), rows, `ledger of broadcast ${id}`);
    }
    const capWindow = await db.pool.query(`SELECT count(*)::int AS n FROM broadcast_deliveries WHERE chat_id = 1 AND status = 'sent' AND sent_at > now() - interval '24 hours'`);
    assert.is(capWindow.rows[0].n, 1, 'the frequency cap still sees the recent send');

    // The daemon's hourly run is the same work.
    const again = await seed(db, { status: 'completed', finishedAgo: '2 days', rows: 5 });
    const reports = await new Maintenance([historyRetention(db.pool, 1)], silentLogger()).runOnce();
    assert.equal(reports.map((r) => r.fields), [{ broadcasts: 1, deliveries: 5, retentionDays: 1 }]);
    assert.is(await exists(db, again), false);
  } finally {
    await db.drop();
  }
});

/** Resolves 'waiting' as soon as a backend of this database waits on a lock, else never. */
function lockWait(db: TestDatabase, signal: AbortSignal): Promise<'waiting'> {
  return new Promise((resolve) => {
    const poll = async () => {
      while (!signal.aborted) {
        const { rowCount } = await db.pool.query(`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`);
        if (rowCount) return resolve('waiting');
        await new Promise((r) => setImmediate(r));
      }
    };
    void poll();
  });
}

test('a ledger claim and an outcome write never wait on the history cleaner', async () => {
  const db = await createTestDatabase();
  const cleaner = await db.pool.connect();
  const stop = new AbortController();
  try {
    const old = await seed(db, { status: 'completed', finishedAgo: '40 days', rows: 2_000 });
    const running = await seed(db, { status: 'sending', finishedAgo: null, rows: 2_000, rowStatus: 'pending' });
    // The cleaner in the middle of its work: a batch deleted, its transaction still open.
    await cleaner.query('BEGIN');
    assert.is((await deleteLedgerBatch(cleaner, old, null, 1_000)).length, 1_000);
    await cleaner.query(`DELETE FROM broadcasts WHERE broadcast_id = $1`, [old]);

    const waiting = lockWait(db, stop.signal);
    const sender = (async () => {
      const due = await claimDue(db.pool, running, 100);
      await recordDeliveries(db.pool, running, due.map((d) => ({ chatId: d.chatId, claim: d.claim, status: 'sent' as const, outcome: null, messageId: 1 })));
      return due.length;
    })();
    assert.is(await Promise.race([sender, waiting]), 100, 'the sender waited on a lock the cleaner holds');
    await cleaner.query('ROLLBACK');
  } finally {
    stop.abort();
    cleaner.release();
    await db.drop();
  }
});

test('the history cleaner skips rows someone holds instead of waiting, and keeps their broadcast', async () => {
  const db = await createTestDatabase();
  const holder = await db.pool.connect();
  try {
    const old = await seed(db, { status: 'completed', finishedAgo: '40 days', rows: 30 });
    await holder.query('BEGIN');
    await holder.query('SELECT 1 FROM broadcast_deliveries WHERE broadcast_id = $1 AND chat_id = 7 FOR UPDATE', [old]);
    const result = await deleteOldBroadcasts(db.pool, 1, { batch: 10 });
    assert.equal(result, { broadcasts: 0, deliveries: 29 });
    assert.ok(await exists(db, old));
    await holder.query('ROLLBACK');
    assert.equal(await deleteOldBroadcasts(db.pool, 1), { broadcasts: 1, deliveries: 1 });
  } finally {
    holder.release();
    await db.drop();
  }
});

test.run();
