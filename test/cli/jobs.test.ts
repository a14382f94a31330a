import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { json, bqctlInProcess, runBqctl } from './run-bqctl.js';

async function withDb(body: (db: TestDatabase, env: Record<string, string>) => Promise<void>): Promise<void> {
  const db = await createTestDatabase();
  try {
    await body(db, { DATABASE_URL: db.url });
  } finally {
    await db.drop();
  }
}

/** Inserts a job in a given state, as the daemon would have left it. */
async function job(db: TestDatabase, fields: { type?: string; queue?: string; status?: string; error?: string; attempts?: number; maxAttempts?: number; finishedAgo?: string; payload?: unknown }): Promise<number> {
  const { rows } = await db.pool.query(
    `INSERT INTO broadcast_queue_jobs (job_type, queue, status, last_error, attempts, max_attempts, payload, finished_at, errors)
     VALUES ($1, $2, $3, $4, $5, $6, $7,
             CASE WHEN $3 IN ('completed', 'failed', 'cancelled') THEN now() - COALESCE($8::interval, '0') END,
             CASE WHEN $4::text IS NULL THEN '[]'::jsonb ELSE jsonb_build_array(jsonb_build_object('at', now(), 'attempt', $5::int, 'error', $4::text)) END)
     RETURNING job_id`,
    [fields.type ?? 'send', fields.queue ?? 'broadcasts', fields.status ?? 'pending', fields.error ?? null, fields.attempts ?? 0, fields.maxAttempts ?? 3,
      JSON.stringify(fields.payload ?? { chat_id: 1, message: { text: 'hi' } }), fields.finishedAgo ?? null],
  );
  return rows[0].job_id;
}

test('usage errors exit 2, bad configuration exits 78, with no stack trace', async () => {
  const bad = await bqctlInProcess(['show', 'abc'], { DATABASE_URL: 'postgres://127.0.0.1:1/none' });
  assert.is(bad.code, 2);
  assert.is(bad.stderr.trim(), 'error: job id must be a positive integer, got "abc"');
  const unknown = await bqctlInProcess(['list', '--bogus']);
  assert.is(unknown.code, 2);
  assert.match(unknown.stderr, /unknown option '--bogus'/);
  const missing = await bqctlInProcess(['cancel']);
  assert.is(missing.code, 2);
  const config = await runBqctl(['list'], { DATABASE_URL: 'not a url' });
  assert.is(config.code, 78);
  assert.match(config.stderr, /DATABASE_URL is not a valid URL/);
  const since = await bqctlInProcess(['list', '--since', 'yesterday'], { DATABASE_URL: 'postgres://127.0.0.1:1/none' });
  assert.is(since.code, 2);
  assert.match(since.stderr, /--since must be/);
  const down = await runBqctl(['list'], { DATABASE_URL: 'postgres://u:secretpw@127.0.0.1:1/none' });
  assert.is(down.code, 1);
  assert.not.match(down.stderr, /secretpw/);
  assert.not.match(down.stderr, /\n\s+at /, 'no stack trace');
  const help = await bqctlInProcess(['retry', '--help']);
  assert.is(help.code, 0);
  assert.match(help.stdout, /Examples:/);
});

test('list filters and pages newest first; show returns the row with its errors and broadcast counts', async () => {
  await withDb(async (db, env) => {
    const a = await job(db, { type: 'send', status: 'completed' });
    const b = await job(db, { type: 'send', status: 'failed', error: 'Bad Request: chat not found', attempts: 3 });
    const c = await job(db, { type: 'other', queue: 'mail', status: 'pending' });
    const all = json(await runBqctl(['list', '--json'], env));
    assert.equal(all.jobs.map((j: any) => j.job_id), [c, b, a]);
    assert.equal(Object.keys(all.jobs[0]), ['job_id', 'queue', 'job_type', 'payload', 'priority', 'run_at', 'max_attempts', 'job_key', 'status', 'attempts', 'last_error', 'last_error_reason', 'errors', 'result', 'locked_by', 'created_at', 'started_at', 'finished_at', 'updated_at', 'depends_on', 'on_dependency_failure', 'open_dependencies']);
    assert.equal(json(await runBqctl(['list', '--status', 'failed', '--json'], env)).jobs.map((j: any) => j.job_id), [b]);
    assert.equal(json(await runBqctl(['list', '--queue', 'mail', '--type', 'other', '--json'], env)).jobs.map((j: any) => j.job_id), [c]);
    assert.equal(json(await runBqctl(['list', '--limit', '1', '--offset', '1', '--json'], env)).jobs.map((j: any) => j.job_id), [b]);
    assert.equal(json(await runBqctl(['list', '--since', '1h', '--json'], env)).jobs.length, 3);
    assert.equal(json(await runBqctl(['list', '--since', '2999-01-01T00:00:00Z', '--json'], env)).jobs.length, 0);
    const text = await runBqctl(['list'], env);
    assert.is(text.code, 0);
    assert.match(text.stdout, /chat not found/);

    const shown = json(await runBqctl(['show', String(b), '--json'], env));
    assert.is(shown.status, 'failed');
    assert.is(shown.errors.length, 1);
    assert.is(shown.errors[0].error, 'Bad Request: chat not found');

    const { rows } = await db.pool.query(`INSERT INTO broadcasts (title, message, status, total, sent, blocked) VALUES ('T', '{"text":"x"}', 'completed', 5, 4, 1) RETURNING broadcast_id`);
    const bj = await job(db, { type: 'broadcast', status: 'completed', payload: { broadcast_id: rows[0].broadcast_id } });
    const withCounts = json(await runBqctl(['show', String(bj), '--json'], env));
    assert.equal(withCounts.broadcast, { broadcast_id: rows[0].broadcast_id, title: 'T', status: 'completed', total: 5, sent: 4, failed: 0, blocked: 1, skipped: 0, unknown: 0 });
    const human = await runBqctl(['show', String(bj)], env);
    assert.match(human.stdout, /Broadcast \d+/);

    const none = await runBqctl(['show', '999999'], env);
    assert.is(none.code, 1);
    assert.match(none.stderr, /job 999999 does not exist/);
  });
});

test('retry by id and retry --failed with filters put failed jobs back to pending, due now, with one more attempt', async () => {
  await withDb(async (db, env) => {
    const one = await job(db, { status: 'failed', error: 'boom', attempts: 3, maxAttempts: 3 });
    const net = await job(db, { status: 'failed', error: 'ETIMEDOUT talking to api', attempts: 3 });
    const old = await job(db, { status: 'failed', error: 'ETIMEDOUT long ago', attempts: 3, finishedAgo: '3 days' });
    const mail = await job(db, { type: 'other', queue: 'mail', status: 'failed', error: 'etimedout', attempts: 3 });
    const done = await job(db, { status: 'completed' });

    const byId = await runBqctl(['retry', String(one), '--json'], env);
    assert.is(byId.code, 0, byId.stderr);
    assert.equal(json(byId).results, [{ job_id: one, outcome: 'retried', status: 'pending' }]);
    const row = (await db.pool.query('SELECT status, max_attempts, run_at <= now() AS due, finished_at FROM broadcast_queue_jobs WHERE job_id = $1', [one])).rows[0];
    assert.equal(row, { status: 'pending', max_attempts: 4, due: true, finished_at: null });

    const dry = json(await runBqctl(['retry', '--failed', '--error', 'etimedout', '--since', '1d', '--dry-run', '--json'], env));
    assert.equal(dry.job_ids, [net, mail], JSON.stringify({ dry, net, old, mail }));
    const filtered = await runBqctl(['retry', '--failed', '--error', 'ETIMEDOUT', '--queue', 'broadcasts', '--type', 'send', '--since', '1d', '--json'], env);
    assert.is(filtered.code, 0, filtered.stderr);
    assert.equal(json(filtered).results.map((r: any) => r.job_id), [net]);
    const statuses = (await db.pool.query('SELECT job_id, status FROM broadcast_queue_jobs WHERE job_id = ANY($1) ORDER BY job_id', [[net, old, mail]])).rows;
    assert.equal(statuses.map((r) => r.status), ['pending', 'failed', 'failed']);

    const rest = await runBqctl(['retry', '--failed'], env);
    assert.is(rest.code, 0, rest.stderr);
    assert.is((await db.pool.query(`SELECT count(*)::int AS n FROM broadcast_queue_jobs WHERE status = 'failed'`)).rows[0].n, 0);

    // A completed job cannot be retried: reported, exit 1.
    const conflict = await runBqctl(['retry', String(done), '--json'], env);
    assert.is(conflict.code, 1);
    assert.is(json(conflict).results[0].outcome, 'conflict');
    assert.is((await bqctlInProcess(['retry'], env)).code, 2);
    assert.is((await bqctlInProcess(['retry', '1', '--failed'], env)).code, 2);
  });
});

test('cancel cancels pending jobs and reports the rest', async () => {
  await withDb(async (db, env) => {
    const pending = await job(db, { status: 'pending' });
    const done = await job(db, { status: 'completed' });
    const result = await runBqctl(['cancel', String(pending), String(done), '999999', '--json'], env);
    assert.is(result.code, 1, 'one of them could not be cancelled');
    assert.equal(json(result).results.map((r: any) => r.outcome), ['cancelled', 'conflict', 'not_found']);
    assert.is((await db.pool.query('SELECT status FROM broadcast_queue_jobs WHERE job_id = $1', [pending])).rows[0].status, 'cancelled');
    const again = await runBqctl(['cancel', String(await job(db, { status: 'pending' }))], env);
    assert.is(again.code, 0, again.stderr);
    assert.match(again.stdout, /cancelled/);
  });
});

test('cleanup deletes finished jobs past the retention; workers and status show daemons, rate limits and broadcasts', async () => {
  await withDb(async (db, env) => {
    await job(db, { status: 'completed', finishedAgo: '10 days' });
    await job(db, { status: 'failed', finishedAgo: '10 days' });
    const recent = await job(db, { status: 'completed', finishedAgo: '1 day' });
    const cleaned = await runBqctl(['cleanup', '--days', '7', '--json'], env);
    assert.is(cleaned.code, 0, cleaned.stderr);
    assert.equal(json(cleaned), { deleted: 2, days: 7 });
    assert.is((await bqctlInProcess(['cleanup', '--days', '0'], env)).code, 2);
    // BQ_CLEANUP_DAYS=0 keeps finished jobs (as cleanupDays: 0 does in the library): "older than 0 days" must not mean all of them.
    assert.equal(json(await runBqctl(['cleanup', '--json'], { ...env, BQ_CLEANUP_DAYS: '0' })), { deleted: 0, days: 0 });
    assert.is((await db.pool.query('SELECT count(*)::int AS n FROM broadcast_queue_jobs WHERE job_id = $1', [recent])).rows[0].n, 1);
    assert.equal(json(await runBqctl(['cleanup', '--json'], { ...env, BQ_CLEANUP_DAYS: '1' })), { deleted: 1, days: 1 });
    assert.is((await db.pool.query('SELECT count(*)::int AS n FROM broadcast_queue_jobs WHERE job_id = $1', [recent])).rows[0].n, 0);

    // A daemon row long silent: registered but not live.
    // lock_key (when the schema has it) names an advisory lock nobody holds.
    const hasLockKey = (await db.pool.query(`SELECT 1 FROM information_schema.columns WHERE table_name = 'broadcast_queue_daemons' AND column_name = 'lock_key'`)).rows.length > 0;
    await db.pool.query(`INSERT INTO broadcast_queue_daemons (daemon_id, hostname, pid, queues, job_types, concurrency, version, last_heartbeat_at${hasLockKey ? ', lock_key' : ''})
                         VALUES ('dead-1', 'h', 1, '{broadcasts}', '{send}', 2, '0', now() - interval '1 hour'${hasLockKey ? ', 987654' : ''})`);
    await db.pool.query(`INSERT INTO broadcast_queue_jobs (status, locked_by, attempts) VALUES ('processing', 'dead-1', 1)`);
    const workers = json(await runBqctl(['workers', '--json'], env));
    assert.equal(workers.live, []);
    assert.equal(workers.stale.map((d: any) => [d.daemonId, d.running]), [['dead-1', 1]]);
    assert.match((await runBqctl(['workers'], env)).stdout, /dead-1/);

    await db.pool.query(`INSERT INTO broadcast_rate_limits (bot_id, paused_until, pause_reason, halted_at, halt_reason) VALUES (123456, now() + interval '1 minute', '429', now(), '401 Unauthorized')`);
    await db.pool.query(`INSERT INTO broadcasts (title, message, status, total, sent) VALUES ('live one', '{"text":"x"}', 'sending', 10, 3), ('old', '{"text":"x"}', 'completed', 1, 1)`);
    const status = json(await runBqctl(['status', '--json'], env));
    assert.ok(status.queues.broadcasts);
    assert.is(status.rateLimits[0].botId, 123456);
    assert.ok(status.rateLimits[0].haltedAt);
    assert.equal(status.broadcastsInProgress.map((b: any) => [b.title, b.sent, b.total]), [['live one', 3, 10]]);
    const human = await runBqctl(['status'], env);
    assert.match(human.stdout, /HALTED since/);
    assert.match(human.stdout, /live one/);
  });
});

test.run();
