import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BroadcastQueue } from '../../src/broadcast-queue.js';
import { createLogger } from '../../src/log.js';
import { createTestDatabase, queryWithoutHandOver } from '../helpers/db.js';
import { ReplyLoss } from '../helpers/reply-loss.js';
import { untilOffering } from '../helpers/idle-daemon.js';
import { watchJobs } from '../helpers/wait.js';

// Only keeps a broken run from hanging the suite; nothing asserts on time.
const SAFETY_MS = 60_000;

test('a job claimed by a statement whose answer was lost runs once, on the live daemon that holds it', async () => {
  // The claim marks the job 'processing' for this daemon and commits; the connection dies before
  // the answer (a restart, a pooled connection cut). The rescuer hands back only a dead or hung
  // daemon's jobs, and this one is alive with its listener connected, so the job stayed
  // 'processing' for as long as the daemon lived.
  const db = await createTestDatabase();
  const proxy = await ReplyLoss.start(db.url);
  const ran: number[] = [];
  const lines: { msg: string; jobs?: number[] }[] = [];
  const log = createLogger({ level: 'info', destination: { write: (line: string) => void lines.push(JSON.parse(line)) } as never });
  const queue = new BroadcastQueue({
    connectionString: proxy.connectionString(db.url),
    handlers: { noop: (job) => void ran.push(job.jobId) },
    sweepMs: 3_600_000,
    concurrency: 2,
    log,
  });
  try {
    await queue.start();
    const jobs = watchJobs(queue);
    await untilOffering(queue, db, 2);
    // The claim is a named statement: after the first, only its name goes over the wire.
    const lost = proxy.loseAnswerTo('broadcast_queue_claim');
    // Not handed over at the insert: it must be claimed.
    const { rows } = await queryWithoutHandOver(db, `INSERT INTO broadcast_queue_jobs (job_type) VALUES ('noop') RETURNING job_id`);
    const jobId = Number(rows[0].job_id);
    await lost;
    proxy.release();
    const done = await jobs.done(jobId, undefined, SAFETY_MS);
    assert.is(done.outcome.kind, 'completed');
    // Read back, not claimed again: the lost claim had committed.
    assert.equal(lines.filter((l) => l.msg === 'running jobs claimed by a statement whose answer was lost').map((l) => l.jobs), [[jobId]]);
    assert.is(done.job.attempt, 1, 'the run is the claim that lost its answer, not a second attempt');
    const row = async () => (await db.pool.query(`SELECT status, attempts FROM broadcast_queue_jobs WHERE job_id = $1`, [jobId])).rows[0];
    assert.equal(ran, [jobId]);
    assert.equal(await row(), { status: 'completed', attempts: 1 });
  } finally {
    // Connections opened after the loss wait for release(): stop() needs them.
    proxy.release();
    await queue.stop();
    await proxy.close();
    await db.drop();
  }
});

test.run();
