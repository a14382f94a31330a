import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createPool } from '../../src/db/pool.js';
import { silentLogger } from '../../src/log.js';
import { Claimer } from '../../src/queue/claimer.js';
import { Recorder } from '../../src/queue/recorder.js';
import { createTestDatabase } from '../helpers/db.js';
import { ReplyLoss } from '../helpers/reply-loss.js';

test("a job outcome retried after its answer was lost never lands on the job's next claim", async () => {
  // A snooze gives its attempt back, so the next claim of the job has the same attempt number. The
  // recorder wrote a send job's snooze, the answer was lost with the connection, the job was
  // claimed again (by this same daemon) and started sending, and the recorder's retry of the snooze
  // then put the running job back to pending: it ran, and sent, a second time.
  const db = await createTestDatabase();
  const proxy = await ReplyLoss.start(db.url);
  const lossy = createPool({ connectionString: proxy.connectionString(db.url), max: 1, applicationName: 'bq-test-lossy', log: silentLogger() });
  const recorder = new Recorder(lossy, 'd1', silentLogger());
  const claimer = new Claimer(db.pool, 'd1', ['broadcasts'], ['send']);
  try {
    const jobId = Number((await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, payload) VALUES ('send', '{}') RETURNING job_id`)).rows[0].job_id);
    const [first] = await claimer.claim(1);
    assert.ok(first);
    const lost = proxy.loseAnswerTo('UPDATE broadcast_queue_jobs j');
    const snoozed = recorder.record({ jobId, attempt: first.attempt, claimedAt: first.claimedAt, outcome: { kind: 'snooze', delayMs: 0, error: 'database unavailable', reason: 'database_unavailable' } });
    await lost;
    const row = async () => (await db.pool.query(`SELECT status, attempts, locked_by FROM broadcast_queue_jobs WHERE job_id = $1`, [jobId])).rows[0];
    assert.equal(await row(), { status: 'pending', attempts: 0, locked_by: null }, 'the lost write had landed');

    const [second] = await claimer.claim(1);
    assert.ok(second, 'the snoozed job is claimed again');
    assert.is(second.attempt, first.attempt);
    // The recorder's retry goes out now, while the second run is under way.
    proxy.release();
    assert.is(await snoozed, false, 'the retried snooze landed on the next claim');
    assert.equal(await row(), { status: 'processing', attempts: 1, locked_by: 'd1' });
    assert.is(await recorder.record({ jobId, attempt: second.attempt, claimedAt: second.claimedAt, outcome: { kind: 'completed', result: { sent: true } } }), true);
    assert.equal(await row(), { status: 'completed', attempts: 1, locked_by: null });
  } finally {
    recorder.close();
    await lossy.end().catch(() => undefined);
    await proxy.close();
    await db.drop();
  }
});

test.run();
