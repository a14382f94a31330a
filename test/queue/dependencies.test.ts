// Job dependencies from plain SQL (issue 16, sql/0010_job_dependencies.sql): a job with depends_on
// waits until every listed job completed, sees their results, is cancelled with a reason when one
// fails unless it opted out, and cannot name a job that does not exist yet.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BroadcastQueue, type BroadcastQueueOptions } from '../../src/broadcast-queue.js';
import { PermanentError } from '../../src/errors.js';
import type { Job } from '../../src/queue/claimer.js';
import { Claimer } from '../../src/queue/claimer.js';
import { getJob } from '../../src/queue/jobs-store.js';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { until, waitForEvent } from '../helpers/wait.js';

const HOUR_MS = 3_600_000;

async function withQueue(handlers: BroadcastQueueOptions['handlers'], body: (queue: BroadcastQueue, db: TestDatabase) => Promise<void>) {
  const db = await createTestDatabase();
  const queue = new BroadcastQueue({ connectionString: db.url, sweepMs: HOUR_MS, handlers });
  try {
    await queue.start();
    await body(queue, db);
  } finally {
    await queue.stop();
    await db.drop();
  }
}

async function insert(db: TestDatabase, sql: string, params: unknown[] = []): Promise<number> {
  const { rows } = await db.pool.query(sql, params);
  return rows[0].job_id;
}

const statusOf = (db: TestDatabase, jobId: number) =>
  db.pool.query('SELECT status, last_error FROM broadcast_queue_jobs WHERE job_id = $1', [jobId]).then((r) => r.rows[0]);

test('a job waits for every dependency to complete, then runs with their results', async () => {
  let seen: Job['dependencies'] | undefined;
  await withQueue({
    fetch: (job) => ({ rows: job.payload.rows }),
    summarise: (job) => {
      seen = job.dependencies;
      return { total: job.dependencies.reduce((n, d) => n + (d.result as { rows: number }).rows, 0) };
    },
  }, async (queue, db) => {
    await queue.pause();
    const a = await insert(db, `INSERT INTO broadcast_queue_jobs (job_type, payload) VALUES ('fetch', '{"rows": 2}') RETURNING job_id`);
    const b = await insert(db, `INSERT INTO broadcast_queue_jobs (job_type, payload) VALUES ('fetch', '{"rows": 3}') RETURNING job_id`);
    const c = await insert(db, `INSERT INTO broadcast_queue_jobs (job_type, depends_on) VALUES ('summarise', ARRAY[$1, $2]::bigint[]) RETURNING job_id`, [b, a]);
    assert.is((await statusOf(db, c)).status, 'waiting');
    const done = waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobId === c);
    queue.resume();
    const event = await done;
    assert.equal(event.outcome, { kind: 'completed', result: { total: 5 } });
    // In depends_on's order, each with its result.
    assert.equal(seen, [
      { jobId: b, jobType: 'fetch', status: 'completed', result: { rows: 3 } },
      { jobId: a, jobType: 'fetch', status: 'completed', result: { rows: 2 } },
    ]);
    // The database's times, not the order of events: a job:done event is emitted after its
    // completion commits, and the released job may be claimed and started before that.
    const { rows } = await db.pool.query(
      `SELECT bool_and(c.started_at >= d.finished_at) AS after_both FROM broadcast_queue_jobs c, broadcast_queue_jobs d WHERE c.job_id = $1 AND d.job_id = ANY($2)`,
      [c, [a, b]],
    );
    assert.ok(rows[0].after_both, 'the summarising job started before a dependency finished');
  });
});

test('a job whose dependencies completed already is pending at once', async () => {
  const db = await createTestDatabase();
  try {
    const a = await insert(db, `INSERT INTO broadcast_queue_jobs (job_type, status, result, finished_at) VALUES ('x', 'completed', '1', now()) RETURNING job_id`);
    const b = await insert(db, `INSERT INTO broadcast_queue_jobs (job_type, depends_on) VALUES ('x', ARRAY[$1]::bigint[]) RETURNING job_id`, [a]);
    assert.is((await statusOf(db, b)).status, 'pending');
    // An empty list is no dependency at all.
    const c = await insert(db, `INSERT INTO broadcast_queue_jobs (job_type, depends_on) VALUES ('x', '{}') RETURNING job_id`);
    assert.is((await statusOf(db, c)).status, 'pending');
  } finally {
    await db.drop();
  }
});

test('unknown ids are refused at insert, and no cycle can be written', async () => {
  const db = await createTestDatabase();
  try {
    const refused = async (sql: string, params: unknown[] = []) => db.pool.query(sql, params).then(() => null, (e: Error & { code?: string }) => e);
    const unknown = await refused(`INSERT INTO broadcast_queue_jobs (job_type, depends_on) VALUES ('x', ARRAY[424242]::bigint[])`);
    assert.ok(unknown, 'an unknown dependency was accepted');
    assert.is(unknown!.code, '23503');
    assert.is(unknown!.message, 'depends_on names job 424242, which does not exist');
    // A job naming itself: its own row does not exist before it is inserted.
    const self = await refused(`INSERT INTO broadcast_queue_jobs (job_id, job_type, depends_on) VALUES (77, 'x', ARRAY[77]::bigint[])`);
    assert.match(self!.message, /depends_on names job 77, which does not exist/);
    const withNull = await refused(`INSERT INTO broadcast_queue_jobs (job_type, depends_on) VALUES ('x', ARRAY[NULL]::bigint[])`);
    assert.match(withNull!.message, /depends_on of a job cannot hold NULL/);
    // The only other way to a cycle: pointing an older job at a newer one afterwards.
    const a = await insert(db, `INSERT INTO broadcast_queue_jobs (job_type) VALUES ('x') RETURNING job_id`);
    const b = await insert(db, `INSERT INTO broadcast_queue_jobs (job_type, depends_on) VALUES ('x', ARRAY[$1]::bigint[]) RETURNING job_id`, [a]);
    const changed = await refused(`UPDATE broadcast_queue_jobs SET depends_on = ARRAY[$1]::bigint[] WHERE job_id = $2`, [b, a]);
    assert.match(changed!.message, new RegExp(`depends_on of job ${a} cannot change after it is inserted`));
    const bad = await refused(`INSERT INTO broadcast_queue_jobs (job_type, depends_on, on_dependency_failure) VALUES ('x', ARRAY[$1]::bigint[], 'ignore')`, [a]);
    assert.match(bad!.message, /broadcast_queue_jobs_on_dependency_failure_valid/);
  } finally {
    await db.drop();
  }
});

test('a failed dependency cancels its dependents transitively, naming it; an opted-out dependent runs', async () => {
  let sawFailure: Job['dependencies'] | undefined;
  await withQueue({
    breaks: () => { throw new PermanentError('source unreachable'); },
    never: () => { throw new Error('a cancelled dependent ran'); },
    cleanup: (job) => { sawFailure = job.dependencies; return 'cleaned'; },
  }, async (queue, db) => {
    await queue.pause();
    const a = await insert(db, `INSERT INTO broadcast_queue_jobs (job_type) VALUES ('breaks') RETURNING job_id`);
    const b = await insert(db, `INSERT INTO broadcast_queue_jobs (job_type, depends_on) VALUES ('never', ARRAY[$1]::bigint[]) RETURNING job_id`, [a]);
    const c = await insert(db, `INSERT INTO broadcast_queue_jobs (job_type, depends_on) VALUES ('never', ARRAY[$1]::bigint[]) RETURNING job_id`, [b]);
    const d = await insert(db, `INSERT INTO broadcast_queue_jobs (job_type, depends_on, on_dependency_failure) VALUES ('cleanup', ARRAY[$1]::bigint[], 'run') RETURNING job_id`, [a]);
    const cleaned = waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobId === d);
    queue.resume();
    assert.equal((await cleaned).outcome, { kind: 'completed', result: 'cleaned' });
    assert.equal(sawFailure, [{ jobId: a, jobType: 'breaks', status: 'failed', result: null }]);
    assert.equal(await statusOf(db, b), { status: 'cancelled', last_error: `dependency ${a} failed` });
    assert.equal(await statusOf(db, c), { status: 'cancelled', last_error: `dependency ${b} cancelled: dependency ${a} failed` });
    // A dependent inserted after its dependency failed is cancelled at once, for the same reason.
    const late = await insert(db, `INSERT INTO broadcast_queue_jobs (job_type, depends_on) VALUES ('never', ARRAY[$1]::bigint[]) RETURNING job_id`, [a]);
    assert.equal(await statusOf(db, late), { status: 'cancelled', last_error: `dependency ${a} failed` });
  });
});

test('cancelling a waiting job cancels its dependents; retrying one waits again for what is open', async () => {
  const db = await createTestDatabase();
  try {
    const a = await insert(db, `INSERT INTO broadcast_queue_jobs (job_type) VALUES ('x') RETURNING job_id`);
    const b = await insert(db, `INSERT INTO broadcast_queue_jobs (job_type, depends_on) VALUES ('x', ARRAY[$1]::bigint[]) RETURNING job_id`, [a]);
    const c = await insert(db, `INSERT INTO broadcast_queue_jobs (job_type, depends_on) VALUES ('x', ARRAY[$1]::bigint[]) RETURNING job_id`, [b]);
    await db.pool.query(`UPDATE broadcast_queue_jobs SET status = 'cancelled', finished_at = now() WHERE job_id = $1`, [b]);
    assert.equal(await statusOf(db, c), { status: 'cancelled', last_error: `dependency ${b} cancelled` });
    // Back to pending by hand (what bqctl retry does): a is still open, so b waits again.
    await db.pool.query(`UPDATE broadcast_queue_jobs SET status = 'pending', finished_at = NULL WHERE job_id = $1`, [b]);
    assert.is((await statusOf(db, b)).status, 'waiting');
  } finally {
    await db.drop();
  }
});

test('the claim never returns a waiting job, and a waiting job holds its job_key', async () => {
  const db = await createTestDatabase();
  try {
    const a = await insert(db, `INSERT INTO broadcast_queue_jobs (job_type, run_at) VALUES ('x', now() + interval '1 hour') RETURNING job_id`);
    const b = await insert(db, `INSERT INTO broadcast_queue_jobs (job_type, depends_on, job_key) VALUES ('x', ARRAY[$1]::bigint[], 'digest') RETURNING job_id`, [a]);
    const claimer = new Claimer(db.pool, 'test-daemon', ['broadcasts'], ['x']);
    assert.equal(await claimer.claim(10), []);
    const duplicate = await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, job_key) VALUES ('x', 'digest')`).then(() => null, (e: Error) => e);
    assert.match(duplicate!.message, /broadcast_queue_jobs_job_key_unfinished_idx/);
    await db.pool.query(`UPDATE broadcast_queue_jobs SET status = 'completed', finished_at = now() WHERE job_id = $1`, [a]);
    assert.equal((await claimer.claim(10)).map((j) => j.jobId), [b]);
  } finally {
    await db.drop();
  }
});

test('two dependencies finishing in two transactions at once still release their dependent', async () => {
  const db = await createTestDatabase();
  const first = await db.pool.connect();
  const second = await db.pool.connect();
  try {
    const a = await insert(db, `INSERT INTO broadcast_queue_jobs (job_type) VALUES ('x') RETURNING job_id`);
    const b = await insert(db, `INSERT INTO broadcast_queue_jobs (job_type) VALUES ('x') RETURNING job_id`);
    const c = await insert(db, `INSERT INTO broadcast_queue_jobs (job_type, depends_on) VALUES ('x', ARRAY[$1, $2]::bigint[]) RETURNING job_id`, [a, b]);
    const complete = `UPDATE broadcast_queue_jobs SET status = 'completed', finished_at = now() WHERE job_id = $1`;
    await first.query('BEGIN');
    await first.query(complete, [a]);
    await second.query('BEGIN');
    const secondPid = (await second.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
    // It must wait for the first transaction's lock on c: run before that commits, each would see
    // the other dependency still open and c would wait forever.
    let finished = false;
    const secondDone = second.query(complete, [b]).then(() => { finished = true; });
    await until(async () => finished || (await db.pool.query(`SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'`, [secondPid])).rowCount);
    await first.query('COMMIT');
    await secondDone;
    await second.query('COMMIT');
    assert.is((await statusOf(db, c)).status, 'pending');
  } finally {
    first.release();
    second.release();
    await db.drop();
  }
});

test('a dependent released by a completion in another process wakes the daemon (NOTIFY with that commit), with no sweep', async () => {
  // The daemon has no handler for 'elsewhere', so another process finishes it; its sweep is an
  // hour away and it has no timer for a job it never saw: only the notification can bring it.
  await withQueue({ after: () => 'ran' }, async (queue, db) => {
    const a = await insert(db, `INSERT INTO broadcast_queue_jobs (job_type) VALUES ('elsewhere') RETURNING job_id`);
    const b = await insert(db, `INSERT INTO broadcast_queue_jobs (job_type, depends_on) VALUES ('after', ARRAY[$1]::bigint[]) RETURNING job_id`, [a]);
    const ran = waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobId === b, 20_000);
    await db.pool.query(`UPDATE broadcast_queue_jobs SET status = 'completed', finished_at = now() WHERE job_id = $1`, [a]);
    assert.equal((await ran).outcome, { kind: 'completed', result: 'ran' });
  });
});

test('bqctl show, the API and getStatus() say which dependencies a waiting job waits for', async () => {
  await withQueue({ x: () => null }, async (queue, db) => {
    await queue.pause();
    const a = await insert(db, `INSERT INTO broadcast_queue_jobs (job_type) VALUES ('x') RETURNING job_id`);
    const b = await insert(db, `INSERT INTO broadcast_queue_jobs (job_type, status, finished_at) VALUES ('x', 'completed', now()) RETURNING job_id`);
    const c = await insert(db, `INSERT INTO broadcast_queue_jobs (job_type, depends_on) VALUES ('x', ARRAY[$1, $2]::bigint[]) RETURNING job_id`, [a, b]);
    const job = await getJob(db.pool, c);
    assert.equal([job!.status, job!.depends_on, job!.open_dependencies, job!.on_dependency_failure], ['waiting', [a, b], [a], 'cancel']);
    const status = await queue.getStatus();
    assert.equal(status.waitingOn, [{ jobId: c, queue: 'broadcasts', jobType: 'x', openDependencies: [a] }]);
    assert.is(status.queues.broadcasts!.waiting, 1);
  });
});

test.run();
