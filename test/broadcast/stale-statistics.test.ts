// The ledger's claim and outcome write must keep their plan whatever ANALYZE last saw. Production
// ledgers are analyzed while they hold earlier broadcasts only; the planner then believes a new
// broadcast_id has one row. These tests reproduce that state and check the plans' shape (not their
// time, which a busy machine blurs) and that a broadcast of a few thousand recipients completes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LEDGER_CLAIM_SQL, LEDGER_RECORD_SQL, recordParams } from '../../src/broadcast/ledger.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { insertJob, jobRow, range, withTelegram } from '../helpers/telegram.js';
import { watchJobs } from '../helpers/wait.js';

interface PlanNode {
  'Node Type': string;
  'Parent Relationship'?: string;
  'Relation Name'?: string;
  'Index Name'?: string;
  Plans?: PlanNode[];
}

const nodes = (n: PlanNode): PlanNode[] => [n, ...(n.Plans ?? []).flatMap(nodes)];
const JOINS = ['Nested Loop', 'Hash Join', 'Merge Join'];

async function planOf(db: TestDatabase, sql: string, params: unknown[]): Promise<PlanNode> {
  const { rows } = await db.pool.query(`EXPLAIN (FORMAT JSON) ${sql}`, params);
  return rows[0]['QUERY PLAN'][0].Plan;
}

/** An earlier broadcast of `size` sent rows is all ANALYZE saw; a new one of `size` pending rows follows. */
async function staleLedger(db: TestDatabase, size: number): Promise<void> {
  await db.pool.query(`INSERT INTO broadcasts (broadcast_id, message, status) VALUES (1, '{"text":"earlier"}', 'completed'), (2, '{"text":"new"}', 'sending')`);
  await db.pool.query(`INSERT INTO broadcast_deliveries (broadcast_id, chat_id, status, sent_at) SELECT 1, g, 'sent', now() - interval '2 days' FROM generate_series(1, $1::int) g`, [size]);
  await db.pool.query('ANALYZE broadcast_deliveries');
  await db.pool.query(`INSERT INTO broadcast_deliveries (broadcast_id, chat_id) SELECT 2, g FROM generate_series(1, $1::int) g`, [size]);
}

test('the ledger claim runs its locking subquery once, even when the statistics predate the broadcast', async () => {
  const db = await createTestDatabase();
  try {
    // The embedded cluster the runner starts keeps PostgreSQL's default, autovacuum on, as users
    // run it (the machine's shared server has it off).
    if (process.env.BQ_TEST_EMBEDDED) assert.is((await db.pool.query('SHOW autovacuum')).rows[0].autovacuum, 'on');
    await staleLedger(db, 5_000);
    const plan = await planOf(db, LEDGER_CLAIM_SQL, [2, 100, null, null, null]);
    for (const join of nodes(plan).filter((n) => JOINS.includes(n['Node Type']))) {
      assert.not.ok(nodes(join).some((n) => n['Node Type'] === 'LockRows'), `a ${join['Node Type']} re-runs the locking subquery:\n${JSON.stringify(plan, null, 1)}`);
    }
    const lock = nodes(plan).find((n) => n['Node Type'] === 'LockRows');
    assert.ok(lock, 'the claim locks the rows it picks');
    assert.ok(plan.Plans?.some((p) => p['Parent Relationship'] === 'InitPlan' && nodes(p).includes(lock!)), 'the locking subquery is an InitPlan, run once');
    const { rows } = await db.pool.query(LEDGER_CLAIM_SQL, [2, 100, null, null, null]);
    assert.is(rows.length, 100);
  } finally {
    await db.drop();
  }
});

test('an outcome write finds its rows by key with no join, whatever the statistics', async () => {
  const db = await createTestDatabase();
  try {
    await staleLedger(db, 5_000);
    await db.pool.query(`UPDATE broadcast_deliveries SET status = 'sending' WHERE broadcast_id = 2 AND chat_id <= 800`);
    const records = range(1, 800).map((chatId) => ({ chatId, status: 'sent' as const, outcome: null, messageId: chatId }));
    for (const when of ['statistics from the earlier broadcast', 'fresh statistics']) {
      if (when === 'fresh statistics') await db.pool.query('ANALYZE broadcast_deliveries');
      const plan = await planOf(db, LEDGER_RECORD_SQL, recordParams(2, records));
      const joins = nodes(plan).filter((n) => JOINS.includes(n['Node Type']));
      assert.equal(joins.map((n) => n['Node Type']), [], `${when}: the write joins:\n${JSON.stringify(plan, null, 1)}`);
      // With fresh statistics PostgreSQL 15 reads this 5,000-row table sequentially (cheaper than
      // 800 index probes at that size; seen on the machine's server, not on the embedded 17): a
      // rational plan, and no join either way. Stale statistics must still go by key.
      if (when === 'fresh statistics') continue;
      const ledgerIndexes = nodes(plan).filter((n) => n['Index Name']?.startsWith('broadcast_deliveries')).map((n) => n['Index Name']);
      assert.ok(ledgerIndexes.length > 0 && ledgerIndexes.every((i) => i === 'broadcast_deliveries_pkey'), `${when}: the ledger is not read by key: ${ledgerIndexes}`);
      assert.not.ok(nodes(plan).some((n) => n['Node Type'] === 'Seq Scan' && n['Relation Name'] === 'broadcast_deliveries'), `${when}: the ledger is scanned whole`);
    }
    const { rows } = await db.pool.query(LEDGER_RECORD_SQL, recordParams(2, records));
    assert.is(rows[0].written, 800);
    const b = (await db.pool.query('SELECT sent FROM broadcasts WHERE broadcast_id = 2')).rows[0];
    assert.is(b.sent, 800);
  } finally {
    await db.drop();
  }
});

test('a broadcast of 3,000 recipients completes after the ledger was analyzed with an earlier one', async () => {
  await withTelegram({}, async ({ db, api, queue }) => {
    await db.pool.query(`INSERT INTO broadcasts (broadcast_id, message, status) VALUES (1, '{"text":"earlier"}', 'completed')`);
    await db.pool.query(`INSERT INTO broadcast_deliveries (broadcast_id, chat_id, status, sent_at) SELECT 1, g, 'sent', now() - interval '2 days' FROM generate_series(1, 3000) g`);
    await db.pool.query('ANALYZE broadcast_deliveries');
    const chats = range(1, 3000);
    const jobs = watchJobs(queue);
    const jobId = await insertJob(db, 'broadcast', { message: { text: 'the second big one' }, chat_ids: chats });
    const done = await jobs.done(jobId, (e) => e.outcome.kind !== 'retry' && e.outcome.kind !== 'snooze', 120_000);
    assert.is(done.outcome.kind, 'completed');
    const result = (await jobRow(db, jobId)).result;
    // A call that outlives its deadline on a busy machine is counted unknown, not resent.
    assert.equal([result.total, result.sent + result.unknown, result.failed, result.skipped], [3000, 3000, 0, 0]);
    assert.ok(chats.every((c) => api.deliveredCount(c) <= 1), 'some chat got the message twice');
  });
});

test.run();
