// A failed recipient counts as blocked by its reason code (the ledger's error_reason, sql/0017),
// never by the words of its outcome; a row failed before sql/0017 has no reason code and still
// counts by its outcome, as it did when it failed. The broadcast's counters (ledger.ts), its
// recount (finish.ts), a resend (resend.ts) and the metrics label (outcomes.ts) all agree.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { countDeliveries } from '../../src/broadcast/finish.js';
import { claimDue, recordDeliveries, type DeliveryRecord } from '../../src/broadcast/ledger.js';
import { deliveryOutcome } from '../../src/broadcast/outcomes.js';
import { resendRecipients } from '../../src/broadcast/resend.js';
import { createTestDatabase } from '../helpers/db.js';

test('a failed row counts as blocked by its reason code, and one with no reason code (before sql/0017) by its outcome', async () => {
  const db = await createTestDatabase();
  try {
    const { rows } = await db.pool.query(`INSERT INTO broadcasts (title, message, status, total) VALUES ('b', '{"text":"x"}', 'completed', 5) RETURNING broadcast_id`);
    const id = Number(rows[0].broadcast_id);
    await db.pool.query(`INSERT INTO broadcast_deliveries (broadcast_id, chat_id) SELECT $1, g FROM generate_series(1, 5) g`, [id]);
    const claims = new Map((await claimDue(db.pool, id, 10)).map((d) => [d.chatId, d.claim]));
    const failed = (chatId: number, outcome: string, errorReason?: 'blocked' | 'bad_request'): DeliveryRecord => ({ chatId, claim: claims.get(chatId)!, status: 'failed', outcome, ...(errorReason ? { errorReason } : {}) });
    const records = [
      failed(1, 'blocked', 'blocked'),
      // A 403 whose words the outcome list does not hold: its reason code says blocked.
      failed(2, 'user_is_deactivated', 'blocked'),
      // Written as before sql/0017, with no reason code: the outcome decides, as it did then.
      failed(3, 'kicked'),
      failed(4, 'permanent:message_thread_not_found', 'bad_request'),
      failed(5, 'retries_exhausted'),
    ];
    assert.equal(records.map(deliveryOutcome), ['blocked', 'blocked', 'blocked', 'failed', 'failed'], 'the metrics label');
    assert.is(await recordDeliveries(db.pool, id, records), 5);

    const counters = (await db.pool.query('SELECT blocked, failed FROM broadcasts WHERE broadcast_id = $1', [id])).rows[0];
    assert.equal(counters, { blocked: 3, failed: 2 }, 'the counters the outcome write moved');
    const recount = await countDeliveries(db.pool, id);
    assert.equal([recount.blocked, recount.failed], [3, 2], 'the recount from the ledger');

    const resent = await resendRecipients(db.pool, id, { unknown: false, failedReasons: 'all', maxAttempts: 3 });
    assert.equal([resent.resent, resent.from_blocked, resent.from_failed], [5, 3, 2], 'the counters a resend takes the rows from');
    const after = (await db.pool.query('SELECT blocked, failed FROM broadcasts WHERE broadcast_id = $1', [id])).rows[0];
    assert.equal(after, { blocked: 0, failed: 0 });
  } finally {
    await db.drop();
  }
});

test.run();
