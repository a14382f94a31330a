import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BroadcastQueue } from '../../src/broadcast-queue.js';
import { createLogger } from '../../src/log.js';
import { FakeBotApi } from '../../src/testing/index.js';
import { createTestDatabase } from '../helpers/db.js';
import { ReplyLoss } from '../helpers/reply-loss.js';
import { insertJob, range, TEST_TOKEN } from '../helpers/telegram.js';
import { watchJobs } from '../helpers/wait.js';

// Only keeps a broken run from hanging the suite; nothing asserts on time.
const SAFETY_MS = 120_000;

test("recipients claimed by a statement whose answer was lost are sent once, not given up as 'unknown'", async () => {
  // chaos database under --stress (seed 5702): a quick restart cut the connection after a ledger
  // claim had committed. Its rows stayed 'sending', the run ended on the database error, and the
  // job's next run, on the same live daemon, counted the batch as interrupted sends of unknown
  // outcome ('30 unknown outcomes although no daemon died'): nothing had been sent to them.
  const db = await createTestDatabase();
  const proxy = await ReplyLoss.start(db.url);
  const api = new FakeBotApi({ token: TEST_TOKEN });
  const apiRoot = await api.start();
  const lines: { msg: string; rows?: number }[] = [];
  const log = createLogger({ level: 'warn', destination: { write: (line: string) => void lines.push(JSON.parse(line)) } as never });
  // 100/s: batches of 10, so the lost claim holds 10 of the 30 rows.
  const queue = new BroadcastQueue({ connectionString: proxy.connectionString(db.url), telegram: { token: TEST_TOKEN, apiRoot }, rateLimit: 100, sweepMs: 3_600_000, concurrency: 2, log });
  try {
    await queue.start();
    const jobs = watchJobs(queue);
    const chats = range(1, 30);
    // The first ledger claim's answer is lost: the statement marks its rows 'sending' and commits.
    const lost = proxy.loseAnswerTo("status = 'sending', attempts = d.attempts + 1");
    const jobId = await insertJob(db, 'broadcast', { message: { text: 'once' }, chat_ids: chats });
    await lost;
    proxy.release();
    const first = await jobs.done(jobId, undefined, SAFETY_MS);
    assert.is(first.outcome.kind, 'snooze', 'the run that lost the answer ends on the database error');
    // The lost claim had committed: its rows were found 'sending' and given back.
    assert.equal(lines.filter((l) => l.msg === 'recipients of a claim whose answer was lost go back to pending, unsent').map((l) => l.rows), [10]);
    const done = await jobs.done(jobId, undefined, SAFETY_MS);
    assert.is(done.outcome.kind, 'completed');
    const { rows } = await db.pool.query(`SELECT status, count(*)::int AS n FROM broadcast_deliveries GROUP BY status ORDER BY status`);
    assert.equal(rows, [{ status: 'sent', n: 30 }]);
    for (const chat of chats) assert.is(api.deliveredCount(chat), 1, `chat ${chat}`);
    const counts = (await db.pool.query(`SELECT sent, unknown FROM broadcasts`)).rows[0];
    assert.equal(counts, { sent: 30, unknown: 0 });
  } finally {
    // Connections opened after the loss wait for release(): stop() needs them.
    proxy.release();
    await queue.stop();
    await proxy.close();
    await api.stop();
    await db.drop();
  }
});

test.run();
