// /statistics's messages_sent_last_hour and messages_sent_last_24h come from per-minute counts
// that the ledger's outcome writes keep (sql/0009), not from the ledger: the read must not touch
// the ledger at all, and the figures must equal a COUNT(*) over it after a mixed workload.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { claimDue, recordDeliveries, type DeliveryRecord, type DueDelivery } from '../../src/broadcast/ledger.js';
import { statistics } from '../../src/http/statistics.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { DriverLostError } from '../../src/errors.js';

/** A broadcast being sent, with `recipients` pending ledger rows (chat ids 1…recipients). */
async function sendingBroadcast(db: TestDatabase, recipients: number): Promise<number> {
  const { rows } = await db.pool.query(`INSERT INTO broadcasts (title, message, status, started_at) VALUES ('t', '{"text": "hi"}', 'sending', now()) RETURNING broadcast_id`);
  const id = Number(rows[0].broadcast_id);
  await db.pool.query(`INSERT INTO broadcast_deliveries (broadcast_id, chat_id) SELECT $1, g FROM generate_series(1, $2) g`, [id, recipients]);
  return id;
}

// Every kind of outcome the engine writes; a row handed back (a retry, a refund) is sent next time.
function outcome(d: DueDelivery, handedBack: Set<number>): DeliveryRecord {
  if (handedBack.has(d.chatId)) return { chatId: d.chatId, status: 'sent', outcome: null, messageId: d.chatId };
  switch (d.chatId % 7) {
    case 0: return { chatId: d.chatId, status: 'sent', outcome: null, messageId: d.chatId };
    case 1: return { chatId: d.chatId, status: 'sent', outcome: 'migrated', messageId: d.chatId, migratedTo: -100 - d.chatId };
    case 2: return { chatId: d.chatId, status: 'failed', outcome: 'blocked', errorCode: 403 };
    case 3: return { chatId: d.chatId, status: 'failed', outcome: 'chat_not_found', errorCode: 400 };
    case 4: return { chatId: d.chatId, status: 'skipped', outcome: 'opted_out' };
    case 5: handedBack.add(d.chatId); return { chatId: d.chatId, status: 'pending', outcome: null, retryInMs: 0 };
    default: handedBack.add(d.chatId); return { chatId: d.chatId, status: 'pending', outcome: null, refund: true };
  }
}

/** Sends the broadcast to the end, in batches of `batch`. */
async function drain(db: TestDatabase, broadcastId: number, batch: number): Promise<void> {
  const handedBack = new Set<number>();
  for (let due = await claimDue(db.pool, broadcastId, batch); due.length > 0; due = await claimDue(db.pool, broadcastId, batch)) {
    await recordDeliveries(db.pool, broadcastId, due.map((d) => ({ ...outcome(d, handedBack), claim: d.claim })));
  }
}

async function assertSentMatchesLedger(db: TestDatabase, when: string): Promise<void> {
  const s = await statistics(db.pool);
  // The windows are counted to the minute, as the job windows are: the minute a window starts in counts whole.
  const [truth] = (await db.pool.query(`
    SELECT count(*) FILTER (WHERE sent_at >= date_trunc('minute', now() - interval '1 hour'))::int AS sent_1h,
           count(*) FILTER (WHERE sent_at >= date_trunc('minute', now() - interval '24 hours'))::int AS sent_24h
      FROM broadcast_deliveries WHERE status = 'sent'`)).rows;
  assert.equal([s.messagesSentLastHour, s.messagesSentLast24h], [truth.sent_1h, truth.sent_24h], `${when}: sent in the last hour, last 24 hours`);
}

/** As if everything sent so far had been sent `ago` earlier: the ledger and its counts alike. */
async function age(db: TestDatabase, ago: string): Promise<void> {
  await db.pool.query(`UPDATE broadcast_deliveries SET sent_at = sent_at - $1::interval WHERE status = 'sent'`, [ago]);
  await db.pool.query(`UPDATE broadcast_messages_sent SET minute = minute - $1::interval`, [ago]);
}

test('messages sent in the last hour and 24 hours equal COUNT(*) over the ledger after a mixed workload', async () => {
  const db = await createTestDatabase();
  try {
    const day = await sendingBroadcast(db, 500);
    await drain(db, day, 60);
    await age(db, '30 hours');
    await assertSentMatchesLedger(db, 'after a broadcast sent 30 hours ago');

    const hours = await sendingBroadcast(db, 400);
    await drain(db, hours, 75);
    await age(db, '2 hours');
    await assertSentMatchesLedger(db, 'after a broadcast sent 2 hours ago');

    const now = await sendingBroadcast(db, 700);
    const other = await sendingBroadcast(db, 300);
    await Promise.all([drain(db, now, 100), drain(db, other, 40)]);
    // A write for rows no longer 'sending' writes nothing and counts nothing.
    assert.is(await recordDeliveries(db.pool, now, [{ chatId: 1, status: 'sent', outcome: null }]), 0);
    // A run that lost its broadcast writes nothing either.
    const late = await sendingBroadcast(db, 10);
    const due = await claimDue(db.pool, late, 10);
    const lost = { broadcastId: late, jobId: 1, claimedAt: new Date().toISOString() };
    await recordDeliveries(db.pool, lost, due.map((d) => ({ chatId: d.chatId, status: 'sent', outcome: null, claim: d.claim }))).then(
      () => assert.unreachable('a lost driver wrote outcomes'),
      (error) => assert.instance(error, DriverLostError),
    );
    await assertSentMatchesLedger(db, 'after broadcasts sent now');

    await db.pool.query('SELECT broadcast_queue_roll_up_counts()');
    await assertSentMatchesLedger(db, 'after a roll-up');
    const { rows } = await db.pool.query(`SELECT count(*)::int AS n, count(*) FILTER (WHERE minute < now() - interval '25 hours')::int AS old FROM broadcast_messages_sent`);
    assert.is(rows[0].old, 0, 'the roll-up dropped the minutes older than 25 hours');
    assert.ok(rows[0].n <= 3, `one row per minute after the roll-up (${rows[0].n})`);
  } finally {
    await db.drop();
  }
});

test('the messages-sent figures do not read the ledger', async () => {
  const db = await createTestDatabase();
  const locker = new pg.Client({ connectionString: db.url });
  await locker.connect();
  try {
    const id = await sendingBroadcast(db, 50);
    await drain(db, id, 20);
    // Any read of the ledger, even planning one, waits for this lock (until the read's statement_timeout).
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE broadcast_deliveries IN ACCESS EXCLUSIVE MODE');
    const s = await statistics(db.pool);
    assert.ok(s.messagesSentLast24h > 0, `sent messages counted (${s.messagesSentLast24h})`);
    await locker.query('ROLLBACK');
    await assertSentMatchesLedger(db, 'after the lock');
  } finally {
    await locker.end();
    await db.drop();
  }
});

test.run();
