// bqctl broadcast resend --failed-class and broadcast/resend.ts pick failed recipients by their
// reason code (the ledger's error_reason, sql/0017), never by the words of their outcome.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { failedReasons, resendRecipients } from '../../src/broadcast/resend.js';
import { PayloadError } from '../../src/errors.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { bqctlInProcess } from '../cli/run-bqctl.js';

// Failed rows as the drain writes them: the outcome's words beside the reason code.
async function failedBroadcast(db: TestDatabase): Promise<number> {
  const { rows } = await db.pool.query(
    `INSERT INTO broadcasts (title, message, status, total, failed, blocked, started_at, finished_at)
     VALUES ('r', '{"text":"x"}', 'completed', 5, 4, 1, now(), now()) RETURNING broadcast_id`,
  );
  const id = rows[0].broadcast_id;
  await db.pool.query(
    `INSERT INTO broadcast_deliveries (broadcast_id, chat_id, status, outcome, error_reason, attempts) VALUES
       ($1, 1, 'failed', 'retries_exhausted', 'timeout', 5), ($1, 2, 'failed', 'retries_exhausted', 'server_error', 5),
       ($1, 3, 'failed', 'permanent:message_thread_not_found', 'bad_request', 1), ($1, 4, 'failed', 'kicked', 'blocked', 1),
       ($1, 5, 'failed', 'content:parse_entities', 'content', 1)`,
    [id],
  );
  return id;
}

const pendingChats = async (db: TestDatabase, id: number) =>
  (await db.pool.query(`SELECT chat_id FROM broadcast_deliveries WHERE broadcast_id = $1 AND status = 'pending' ORDER BY chat_id`, [id])).rows.map((r) => Number(r.chat_id));

test('failed recipients are resent by reason code: a timeout apart from a server error, bad_request and blocked by their codes', async () => {
  const db = await createTestDatabase();
  try {
    const id = await failedBroadcast(db);
    const timeouts = await resendRecipients(db.pool, id, { unknown: false, failedReasons: failedReasons(['timeout']), maxAttempts: 3 });
    assert.equal([timeouts.resent, timeouts.from_failed, timeouts.from_blocked], [1, 1, 0]);
    assert.equal(await pendingChats(db, id), [1]);

    const more = await resendRecipients(db.pool, id, { unknown: false, failedReasons: failedReasons(['bad_request', 'blocked']), maxAttempts: 3 });
    assert.equal([more.resent, more.from_failed, more.from_blocked, more.job_id, more.existing_job], [2, 1, 1, timeouts.job_id, true]);
    assert.equal(await pendingChats(db, id), [1, 3, 4]);
    const b = (await db.pool.query('SELECT failed, blocked FROM broadcasts WHERE broadcast_id = $1', [id])).rows[0];
    assert.equal(b, { failed: 2, blocked: 0 });
  } finally {
    await db.drop();
  }
});

test('the outcome names bqctl took before still select the same failed rows; any other name is refused', async () => {
  const db = await createTestDatabase();
  try {
    const id = await failedBroadcast(db);
    assert.equal(failedReasons(['retries_exhausted']), ['server_error', 'network', 'timeout']);
    assert.equal(failedReasons(['content', 'all']), 'all');
    const old = await resendRecipients(db.pool, id, { unknown: false, failedReasons: failedReasons(['retries_exhausted', 'permanent']), maxAttempts: 3 });
    assert.is(old.resent, 3);
    assert.equal(await pendingChats(db, id), [1, 2, 3]);
    assert.throws(() => failedReasons(['content:parse_entities']), (e: unknown) => e instanceof PayloadError && /not a reason code; .*chat_not_found/.test(e.message));
    const refused = await bqctlInProcess(['broadcast', 'resend', String(id), '--failed-class', 'parse_entities'], { DATABASE_URL: db.url });
    assert.is(refused.code, 2);
    assert.match(refused.stderr, /--failed-class: "parse_entities" is not a reason code/);
  } finally {
    await db.drop();
  }
});

test.run();
