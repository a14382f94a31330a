import pg from 'pg';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { setBroadcastStatus } from '../../src/broadcast/control.js';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import { createTestDatabase } from '../helpers/db.js';
import { insertJob, jobRow, range, withTelegram } from '../helpers/telegram.js';
import { until, waitForEvent } from '../helpers/wait.js';

// Only keeps a broken run from hanging the suite; nothing asserts on time.
const SAFETY_MS = 60_000;

test('pausing then resuming a draft leaves it a draft, not sending with nothing to send it', async () => {
  const db = await createTestDatabase();
  try {
    const { rows } = await db.pool.query(`INSERT INTO broadcasts (message, audience) VALUES ('{"text": "hi"}', '{"chat_ids": [1]}') RETURNING broadcast_id`);
    const id = rows[0].broadcast_id;
    assert.is((await setBroadcastStatus(db.pool, id, 'pause')).outcome, 'updated');
    const resumed = await setBroadcastStatus(db.pool, id, 'resume');
    assert.is(resumed.outcome === 'updated' && resumed.broadcast.status, 'draft');

    // With a job enqueued for it (by plain SQL, not run yet), resuming means sending.
    await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, payload, run_at) VALUES ('broadcast', $1, now() + interval '1 hour')`, [{ broadcast_id: id }]);
    await setBroadcastStatus(db.pool, id, 'pause');
    const again = await setBroadcastStatus(db.pool, id, 'resume');
    assert.is(again.outcome === 'updated' && again.broadcast.status, 'sending');
  } finally {
    await db.drop();
  }
});

test('a paused broadcast\'s job sleeps until the resume wakes it, instead of being claimed every few seconds', async () => {
  await withTelegram({ queue: { rateLimit: 50 } }, async ({ db, api, queue }) => {
    const jobId = await insertJob(db, 'broadcast', { message: { text: 'slow' }, chat_ids: range(1, 200) });
    await api.waitFor('delivered');
    const broadcastId = (await jobRow(db, jobId)).payload.broadcast_id;
    const snoozed = waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobId === jobId, SAFETY_MS);
    assert.is((await setBroadcastStatus(db.pool, broadcastId, 'pause')).outcome, 'updated');
    assert.is((await snoozed).outcome.kind, 'snooze');
    // The whole backstop (a minute), read off the row itself rather than the clock.
    const asleep = (await db.pool.query(`SELECT status, run_at >= updated_at + interval '1 minute' AS far FROM broadcast_queue_jobs WHERE job_id = $1`, [jobId])).rows[0];
    assert.equal(asleep, { status: 'pending', far: true }, 'the paused job polls instead of waiting for the resume');

    const restarted = waitForEvent(queue, 'job:start', (j: { jobId: number }) => j.jobId === jobId, SAFETY_MS);
    const done = waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobId === jobId && e.outcome.kind === 'completed', SAFETY_MS);
    assert.is((await setBroadcastStatus(db.pool, broadcastId, 'resume')).outcome, 'updated');
    await restarted;
    await done;
    assert.is((await jobRow(db, jobId)).result.sent, 200);
  });
});

test('a resume that lands while the paused job is still recording its snooze still wakes it', async () => {
  const db = await createTestDatabase();
  try {
    const job = (await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, payload, status, locked_by, attempts) VALUES ('broadcast', '{}', 'processing', 'd1', 1) RETURNING job_id`)).rows[0].job_id;
    const { rows } = await db.pool.query(`INSERT INTO broadcasts (message, status, job_id, started_at) VALUES ('{"text": "hi"}', 'paused', $1, now()) RETURNING broadcast_id`, [job]);
    // The resume comes first: the job is still processing, so there is nothing pending to wake.
    await setBroadcastStatus(db.pool, rows[0].broadcast_id, 'resume');
    // Then the job's snooze for the pause is written, as the recorder writes it.
    await db.pool.query(`UPDATE broadcast_queue_jobs SET status = 'pending', locked_by = NULL, run_at = now() + interval '1 hour', last_error = 'broadcast paused', last_error_reason = 'paused' WHERE job_id = $1`, [job]);
    const woken = (await db.pool.query(`SELECT run_at <= now() AS due FROM broadcast_queue_jobs WHERE job_id = $1`, [job])).rows[0];
    assert.is(woken.due, true);
  } finally {
    await db.drop();
  }
});

test('the paused job\'s snooze is told by its reason code, not by the words of its message', async () => {
  const db = await createTestDatabase();
  try {
    const processing = async () => (await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, payload, status, locked_by, attempts) VALUES ('broadcast', '{}', 'processing', 'd1', 1) RETURNING job_id`)).rows[0].job_id;
    const reworded = await processing();
    const retried = await processing();
    // Both broadcasts were resumed while their jobs were still processing.
    await db.pool.query(`INSERT INTO broadcasts (message, status, job_id, started_at) VALUES ('{"text": "hi"}', 'sending', $1, now()), ('{"text": "hi"}', 'sending', $2, now())`, [reworded, retried]);
    const snooze = `UPDATE broadcast_queue_jobs SET status = 'pending', locked_by = NULL, run_at = now() + interval '1 hour', last_error = $2, last_error_reason = $3 WHERE job_id = $1`;
    await db.pool.query(snooze, [reworded, 'paused by an operator', 'paused']);
    // A retry whose error happens to read like the pause's message is no pause: it keeps its backoff.
    await db.pool.query(snooze, [retried, 'broadcast paused', 'handler_error']);
    const due = (await db.pool.query(`SELECT job_id, run_at <= now() AS due FROM broadcast_queue_jobs ORDER BY job_id`)).rows;
    assert.equal(due, [{ job_id: reworded, due: true }, { job_id: retried, due: false }]);
  } finally {
    await db.drop();
  }
});

test('a resume begun while the paused job\'s snooze is uncommitted, committed after it, still wakes the job', async () => {
  // The snooze's trigger read 'paused' (the resume was not committed), and the resume's trigger
  // saw the job still 'processing' (the snooze was not committed): the job slept a whole recheck.
  const db = await createTestDatabase();
  const recorder = new pg.Client({ connectionString: db.url });
  const admin = new pg.Client({ connectionString: db.url });
  try {
    await recorder.connect();
    await admin.connect();
    const job = (await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, payload, status, locked_by, attempts) VALUES ('broadcast', '{}', 'processing', 'd1', 1) RETURNING job_id`)).rows[0].job_id;
    const { rows } = await db.pool.query(`INSERT INTO broadcasts (message, status, job_id, started_at) VALUES ('{"text": "hi"}', 'paused', $1, now()) RETURNING broadcast_id`, [job]);
    await recorder.query('BEGIN');
    await recorder.query(`UPDATE broadcast_queue_jobs SET status = 'pending', locked_by = NULL, run_at = now() + interval '1 hour', last_error = 'broadcast paused', last_error_reason = 'paused' WHERE job_id = $1`, [job]);
    await admin.query('BEGIN');
    const resume = admin.query(`UPDATE broadcasts SET status = 'sending', updated_at = now() WHERE broadcast_id = $1`, [rows[0].broadcast_id]);
    let resumed = false;
    resume.then(() => (resumed = true), () => (resumed = true));
    // Ran (unfixed), or waits for the snooze's lock on the broadcast row (fixed): either way the
    // resume has begun before the snooze commits.
    const recorderPid = (await recorder.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
    await until(async () => resumed || (await db.pool.query(`SELECT 1 FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))`, [recorderPid])).rows.length > 0, 10_000, 'the resume to run or wait');
    await recorder.query('COMMIT');
    await resume;
    await admin.query('COMMIT');
    const woken = (await db.pool.query(`SELECT status, run_at <= now() AS due FROM broadcast_queue_jobs WHERE job_id = $1`, [job])).rows[0];
    assert.equal(woken, { status: 'pending', due: true }, 'the resumed broadcast\'s job sleeps until its recheck');
  } finally {
    await recorder.end().catch(() => undefined);
    await admin.end().catch(() => undefined);
    await db.drop();
  }
});

test.run();
