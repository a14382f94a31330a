// Delivery at each recipient's local time (issue 16 part 3, sql/0020): the due time each ledger
// row gets at fan-out. The fan-out's clock is given (as takeDueTicks' is in test/schedules), so
// these read the rule on fixed dates without waiting for any hour.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createBroadcast, loadBroadcast } from '../../src/broadcast/broadcasts-store.js';
import { setBroadcastStatus } from '../../src/broadcast/control.js';
import { fanOut } from '../../src/broadcast/fanout.js';
import { parseDeliverAtLocal } from '../../src/broadcast/local-time.js';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { insertJob, jobRow, withTelegram } from '../helpers/telegram.js';
import { collectEvents } from '../helpers/wait.js';

async function subscribe(db: TestDatabase, zones: Record<number, string | null>): Promise<void> {
  for (const [chat, zone] of Object.entries(zones)) await db.pool.query('INSERT INTO broadcast_subscribers (chat_id, time_zone) VALUES ($1, $2)', [chat, zone]);
}

/** Fans a stored broadcast out at `now` and returns each chat's due time (ISO, UTC). */
async function dueTimes(db: TestDatabase, columns: { deliver_at_local: string; default_time_zone?: string; audience?: object }, now: string): Promise<Record<number, string>> {
  const { rows } = await db.pool.query(
    `INSERT INTO broadcasts (message, audience, deliver_at_local, default_time_zone) VALUES ('{"text": "hi"}', $1, $2, COALESCE($3, 'UTC')) RETURNING broadcast_id`,
    [JSON.stringify(columns.audience ?? {}), columns.deliver_at_local, columns.default_time_zone ?? null],
  );
  const id = rows[0].broadcast_id;
  await fanOut(db.pool, (await loadBroadcast(db.pool, id))!, 1, new Date(now));
  const ledger = await db.pool.query('SELECT chat_id, next_attempt_at FROM broadcast_deliveries WHERE broadcast_id = $1', [id]);
  return Object.fromEntries(ledger.rows.map((r) => [r.chat_id, r.next_attempt_at.toISOString()]));
}

test('each recipient is due at 09:00 in their own zone, either side of UTC; one whose 09:00 passed, tomorrow; no zone, the default', async () => {
  const db = await createTestDatabase();
  try {
    await subscribe(db, { 1: 'Asia/Tokyo', 2: 'America/Los_Angeles', 3: 'Europe/London', 4: null, 5: 'Asia/Kolkata' });
    // 10:00 UTC on 3 December: 19:00 in Tokyo, 02:00 in Los Angeles, 07:00 in São Paulo, 15:30 in Kolkata.
    const due = await dueTimes(db, { deliver_at_local: '09:00', default_time_zone: 'America/Sao_Paulo' }, '2026-12-03T10:00:00Z');
    assert.equal(due, {
      1: '2026-12-04T00:00:00.000Z', // passed in Tokyo today: tomorrow's 09:00 JST
      2: '2026-12-03T17:00:00.000Z', // still ahead in Los Angeles: today's 09:00 PST
      3: '2026-12-04T09:00:00.000Z', // passed an hour ago in London
      4: '2026-12-03T12:00:00.000Z', // no zone: the broadcast's default, São Paulo
      5: '2026-12-04T03:30:00.000Z', // a half-hour zone
    });
    // Without a default_time_zone, and for chats that are not subscribers, UTC.
    assert.equal(await dueTimes(db, { deliver_at_local: '09:00', audience: { chat_ids: [4, 99] } }, '2026-12-03T08:00:00Z'), { 4: '2026-12-03T09:00:00.000Z', 99: '2026-12-03T09:00:00.000Z' });
    // A time under a minute past is still today's (a broadcast enqueued for 09:00 sent at 09:00 UTC), a later one tomorrow's.
    assert.equal(await dueTimes(db, { deliver_at_local: '09:00', audience: { chat_ids: [3] } }, '2026-12-03T09:00:30Z'), { 3: '2026-12-03T09:00:00.000Z' });
    assert.equal(await dueTimes(db, { deliver_at_local: '09:00', audience: { chat_ids: [3] } }, '2026-12-03T09:01:30Z'), { 3: '2026-12-04T09:00:00.000Z' });
  } finally {
    await db.drop();
  }
});

test('with a date, each zone gets that date\'s time; a zone whose moment already passed is due at once', async () => {
  const db = await createTestDatabase();
  try {
    await subscribe(db, { 1: 'Asia/Tokyo', 2: 'America/Los_Angeles', 3: 'Pacific/Kiritimati' });
    const before = await dueTimes(db, { deliver_at_local: '2026-12-24T09:00' }, '2026-12-20T00:00:00Z');
    assert.equal(before, { 1: '2026-12-24T00:00:00.000Z', 2: '2026-12-24T17:00:00.000Z', 3: '2026-12-23T19:00:00.000Z' });
    // Noon UTC on the 24th: Tokyo's and Kiritimati's 09:00 are past, and stay as they were, due now (sent first).
    const now = '2026-12-24T12:00:00Z';
    const late = await dueTimes(db, { deliver_at_local: '2026-12-24 09:00:30' }, now);
    assert.equal(late, { 1: '2026-12-24T00:00:30.000Z', 2: '2026-12-24T17:00:30.000Z', 3: '2026-12-23T19:00:30.000Z' });
  } finally {
    await db.drop();
  }
});

test('daylight saving: the next 09:00 after a clock change is at the new offset, and a date\'s 09:00 at that date\'s', async () => {
  const db = await createTestDatabase();
  try {
    await subscribe(db, { 1: 'Europe/Berlin', 2: 'America/New_York' });
    // Berlin moves to CEST (+2) on 29 March 2026; at noon UTC on the 28th its 09:00 is past, so
    // the next is the 29th's: 07:00 UTC, not the 08:00 that "24 h after today's" would give.
    assert.equal((await dueTimes(db, { deliver_at_local: '09:00', audience: { chat_ids: [1] } }, '2026-03-28T12:00:00Z'))[1], '2026-03-29T07:00:00.000Z');
    // New York moves to EDT (-4) on 8 March 2026.
    assert.equal((await dueTimes(db, { deliver_at_local: '09:00', audience: { chat_ids: [2] } }, '2026-03-07T18:00:00Z'))[2], '2026-03-08T13:00:00.000Z');
    // Back to EST (-5) on 1 November: the dates either side are an hour apart in UTC.
    const oct31 = await dueTimes(db, { deliver_at_local: '2026-10-31T09:00', audience: { chat_ids: [2] } }, '2026-10-01T00:00:00Z');
    const nov1 = await dueTimes(db, { deliver_at_local: '2026-11-01T09:00', audience: { chat_ids: [2] } }, '2026-10-01T00:00:00Z');
    assert.equal([oct31[2], nov1[2]], ['2026-10-31T13:00:00.000Z', '2026-11-01T14:00:00.000Z']);
    // A time the clock skips (02:30 on Berlin's change) is read as standard time: 03:30 CEST.
    assert.equal((await dueTimes(db, { deliver_at_local: '2026-03-29T02:30', audience: { chat_ids: [1] } }, '2026-03-01T00:00:00Z'))[1], '2026-03-29T01:30:00.000Z');
  } finally {
    await db.drop();
  }
});

test('a malformed local time or an unknown zone is refused with a message naming it, from SQL and in a job payload', async () => {
  for (const [value, message] of [
    ['9am', /payload\.deliver_at_local must be a local time "HH:MM"/],
    ['24:00', /must be a local time "HH:MM"/],
    ['2026-02-30T09:00', /names a date that does not exist: 2026-02-30/],
    [9, /got 9/],
  ] as const) {
    assert.throws(() => parseDeliverAtLocal(value, 'payload.deliver_at_local'), message);
  }
  assert.equal(parseDeliverAtLocal('2026-12-24T09:00', 'x'), { date: '2026-12-24', time: '09:00:00' });
  await withTelegram({}, async ({ db, queue }) => {
    const failed = collectEvents<JobEvent>(queue, 'job:done', 2, (e) => e.outcome.kind === 'failed', 10_000);
    const badTime = await insertJob(db, 'broadcast', { message: { text: 'hi' }, chat_ids: [1], deliver_at_local: '25:00' });
    const badZone = await insertJob(db, 'broadcast', { message: { text: 'hi' }, chat_ids: [1], deliver_at_local: '09:00', default_time_zone: 'Mars/Olympus' });
    assert.equal((await failed).map((e) => e.job.jobId).sort(), [badTime, badZone].sort());
    for (const [jobId, message] of [[badTime, /payload\.deliver_at_local must be a local time "HH:MM" .* got string "25:00"/], [badZone, /payload\.default_time_zone must be an IANA time zone .* got string "Mars\/Olympus"/]] as const) {
      const row = await jobRow(db, jobId);
      assert.match(row.last_error, message);
      assert.is(row.last_error_reason, 'invalid_payload');
    }
    const refused = async (sql: string, params: unknown[]) => (await db.pool.query(sql, params).then(() => null, (e: Error) => e))?.message ?? "accepted";
    assert.match(await refused('INSERT INTO broadcast_subscribers (chat_id, time_zone) VALUES (1, $1)', ['Mars/Olympus']), /time zone "Mars\/Olympus" not recognized/);
    const insert = `INSERT INTO broadcasts (message, deliver_at_local, default_time_zone) VALUES ('{"text": "x"}', $1, $2)`;
    assert.match(await refused(insert, ['9:00', 'UTC']), /violates check constraint "broadcasts_deliver_at_local_valid"/);
    assert.match(await refused(insert, ['2026-02-30T09:00', 'UTC']), /date\/time field value out of range: "2026-02-30"/);
    assert.match(await refused(insert, ['09:00', 'Mars/Olympus']), /time zone "Mars\/Olympus" not recognized/);
  });
});

test('cancelling a broadcast whose job sleeps (waiting for an hour, or a later run_at) makes the job due at once', async () => {
  const db = await createTestDatabase();
  try {
    const b = await createBroadcast(db.pool, { title: null, message: { text: 'x' }, variants: undefined, audience: {}, frequencyCap: null, allowPaidBroadcast: false, send: { runAt: new Date(Date.now() + 3_600_000), maxAttempts: 3 } });
    await db.pool.query('UPDATE broadcasts SET job_id = $2 WHERE broadcast_id = $1', [b.broadcast_id, b.job_id]);
    assert.is((await setBroadcastStatus(db.pool, b.broadcast_id, 'cancel')).outcome, 'updated');
    const { rows } = await db.pool.query('SELECT status, run_at <= now() AS due FROM broadcast_queue_jobs WHERE job_id = $1', [b.job_id]);
    assert.equal(rows[0], { status: 'pending', due: true });
  } finally {
    await db.drop();
  }
});

test.run();
