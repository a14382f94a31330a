import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FakeBotApi } from '../../src/testing/index.js';
import { createTestDatabase } from '../helpers/db.js';
import { startChild, type ChildDaemon } from '../helpers/child.js';
import { insertJob, jobRow, range, TEST_TOKEN } from '../helpers/telegram.js';
import { until, waitForEvent } from '../helpers/wait.js';

const RATE = 100;
const CHATS = 500;

async function killMidBroadcast(delivery: 'at-most-once' | 'at-least-once') {
  const db = await createTestDatabase();
  // The stand-in allows 20 % over our limit: this test is about crashes, and a busy machine's
  // timing jitter must not turn into 429s here (test/telegram/rate-limit.test.ts covers pacing).
  const api = new FakeBotApi({ token: TEST_TOKEN, rateLimit: Math.round(RATE * 1.2) });
  const apiRoot = await api.start();
  const env = {
    DATABASE_URL: db.url, TELEGRAM_BOT_TOKEN: TEST_TOKEN, TELEGRAM_API_ROOT: apiRoot, BQ_RATE_LIMIT: String(RATE),
    BQ_SWEEP_SECONDS: '0.2', BQ_RESCUE_AFTER_SECONDS: '1', BQ_HTTP_PORT: '-1', LOG_LEVEL: 'warn', BQ_DELIVERY: delivery,
  };
  const children: ChildDaemon[] = [];
  const daemon = () => {
    const child = startChild('daemon', env);
    children.push(child);
    return child;
  };
  try {
    const first = daemon();
    const jobId = await insertJob(db, 'broadcast', { message: { text: 'once only' }, chat_ids: range(1, CHATS) });
    await waitForEvent(api, 'delivered', () => api.delivered.length >= 150, 30_000);
    first.process.kill('SIGKILL');
    await first.exited;
    const inFlight = (await db.pool.query(`SELECT count(*)::int AS n FROM broadcast_deliveries WHERE status = 'sending'`)).rows[0].n;

    daemon();
    const row = await until(async () => {
      const r = await jobRow(db, jobId);
      return r.status === 'completed' ? r : null;
    }, 60_000, 'the broadcast to complete after the restart');
    return { result: row.result, inFlight, api };
  } finally {
    for (const child of children) child.process.kill('SIGKILL');
    await Promise.all(children.map((c) => c.exited));
    await api.stop();
    await db.drop();
  }
}

test('kill -9 mid-broadcast, then restart: nobody gets the message twice and unknown is what was in flight', async () => {
  const { result, inFlight, api } = await killMidBroadcast('at-most-once');
  const { sent, unknown, total } = result;
  assert.is(total, CHATS);
  assert.is(sent + unknown, CHATS);
  assert.is(unknown, inFlight, 'exactly the rows in flight at the kill are unknown');
  assert.ok(unknown <= (RATE / 5) * 2, `${unknown} unknown outcomes`);
  const twice = range(1, CHATS).filter((c) => api.deliveredCount(c) > 1);
  assert.equal(twice, [], 'chats that got the message twice');
  const reached = range(1, CHATS).filter((c) => api.deliveredCount(c) === 1).length;
  assert.ok(reached >= sent && reached <= sent + unknown, `stand-in saw ${reached}, ledger says ${sent} sent + ${unknown} unknown`);
  assert.is(api.tooManyRequests, 0);
});

test('at-least-once: the rows in flight at a kill -9 are resent, so everyone gets it and only they may get it twice', async () => {
  const { result, inFlight, api } = await killMidBroadcast('at-least-once');
  assert.equal([result.total, result.sent, result.unknown], [CHATS, CHATS, 0]);
  assert.ok(range(1, CHATS).every((c) => api.deliveredCount(c) >= 1), 'someone was missed');
  const twice = range(1, CHATS).filter((c) => api.deliveredCount(c) > 1).length;
  assert.ok(twice <= inFlight, `${twice} duplicates but only ${inFlight} sends were in flight`);
});

test.run();
