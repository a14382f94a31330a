import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { claimDue, recordDeliveries, type DeliveryRecord } from '../../src/broadcast/ledger.js';
import { createPool } from '../../src/db/pool.js';
import { silentLogger } from '../../src/log.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { ReplyLoss } from '../helpers/reply-loss.js';

async function broadcastOf(db: TestDatabase, chats: number): Promise<number> {
  const { rows } = await db.pool.query(`INSERT INTO broadcasts (title, message, status) VALUES ('retry', '{"text": "once"}', 'sending') RETURNING broadcast_id`);
  const id = Number(rows[0].broadcast_id);
  await db.pool.query(`INSERT INTO broadcast_deliveries (broadcast_id, chat_id) SELECT $1, g FROM generate_series(1, $2) g`, [id, chats]);
  return id;
}

const rowOf = async (db: TestDatabase, id: number, chat: number) =>
  (await db.pool.query(`SELECT status, attempts FROM broadcast_deliveries WHERE broadcast_id = $1 AND chat_id = $2`, [id, chat])).rows[0];

test("a ledger write retried after its answer was lost never undoes the row's next claim", async () => {
  // A row handed back unsent ('pending': the slot came too late, a 429) was written, PostgreSQL
  // went down before the engine heard so, the engine claimed the row again and sent it, and then
  // its retry of the hand-back put the row back to 'pending': the chat got the message twice.
  // (Found tracing the duplicate of chaos database under --stress, seed 3101.)
  const db = await createTestDatabase();
  const proxy = await ReplyLoss.start(db.url);
  const lossy = createPool({ connectionString: proxy.connectionString(db.url), max: 1, applicationName: 'bq-test-lossy', log: silentLogger() });
  try {
    const id = await broadcastOf(db, 1);
    const [first] = await claimDue(db.pool, id, 10);
    assert.ok(first);
    const handBack: DeliveryRecord = { chatId: 1, claim: first.claim, status: 'pending', outcome: null, refund: true };
    const lost = proxy.loseAnswerTo('WITH written AS');
    const write = recordDeliveries(lossy, id, [handBack]).then(() => null, (error: Error) => error);
    await lost;
    assert.match(String((await write)?.message), /terminated|ECONNRESET/, 'the writer was told the connection failed');
    assert.equal(await rowOf(db, id, 1), { status: 'pending', attempts: 0 }, 'the lost write had landed');

    const [second] = await claimDue(db.pool, id, 10);
    assert.ok(second, 'the handed-back row is claimed again');
    assert.is.not(second.claim, first.claim);
    // The engine retries the write it believes failed, while the second claim's call is out.
    assert.is(await recordDeliveries(db.pool, id, [handBack]), 0, 'the stale hand-back landed on the next claim');
    assert.equal(await rowOf(db, id, 1), { status: 'sending', attempts: 1 });
    assert.is(await recordDeliveries(db.pool, id, [{ chatId: 1, claim: second.claim, status: 'sent', outcome: null, messageId: 7 }]), 1);
    assert.equal(await rowOf(db, id, 1), { status: 'sent', attempts: 1 });
    assert.equal(await claimDue(db.pool, id, 10), [], 'a sent row is never claimed again');
    const counts = (await db.pool.query(`SELECT sent, unknown FROM broadcasts WHERE broadcast_id = $1`, [id])).rows[0];
    assert.equal(counts, { sent: 1, unknown: 0 });
  } finally {
    await lossy.end().catch(() => undefined);
    await proxy.close();
    await db.drop();
  }
});

test('an outcome written twice (its first answer lost) counts once', async () => {
  const db = await createTestDatabase();
  try {
    const id = await broadcastOf(db, 3);
    const due = await claimDue(db.pool, id, 10);
    const sent = due.map((d): DeliveryRecord => ({ chatId: d.chatId, claim: d.claim, status: 'sent', outcome: null, messageId: d.chatId }));
    assert.is(await recordDeliveries(db.pool, id, sent), 3);
    assert.is(await recordDeliveries(db.pool, id, sent), 0);
    assert.equal((await db.pool.query(`SELECT sent FROM broadcasts WHERE broadcast_id = $1`, [id])).rows[0], { sent: 3 });
  } finally {
    await db.drop();
  }
});

test.run();
