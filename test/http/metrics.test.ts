import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BroadcastQueue } from '../../src/broadcast-queue.js';
import { PermanentError, REASON_CODES } from '../../src/errors.js';
import { startAdminServer } from '../../src/http/admin-server.js';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import { createTestDatabase } from '../helpers/db.js';
import { insertJob, withTelegram } from '../helpers/telegram.js';
import { collectEvents, waitForEvent } from '../helpers/wait.js';

const TOKEN = 'metrics-test-token-0123456789abcdef';

/** The value of one sample line, e.g. sample(text, 'broadcast_queue_jobs', { queue: 'broadcasts', status: 'completed' }). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v) && Object.keys(have).length === Object.keys(labels).length) return Number(m[3]);
  }
  return undefined;
}

test('/metrics after some jobs ran: counters, gauges from the database, the latency histogram, process metrics', async () => {
  await withTelegram({ queue: { handlers: { boom: () => { throw new PermanentError('boom: record 17 is broken'); } } } }, async ({ db, api, queue }) => {
    // Created after start(): the listener gauge takes its initial state from the queue.
    const admin = await startAdminServer(queue, { host: '127.0.0.1', port: 0, apiToken: TOKEN });
    try {
      api.setChatState(77, 'blocked');
      // Listening before the inserts: a job may finish before the next insert returns.
      const finished = collectEvents<JobEvent>(queue, 'job:done', 5, (e) => e.job.jobType === 'send' || e.job.jobType === 'boom');
      for (const chat of [1, 2, 3, 77]) await insertJob(db, 'send', { chat_id: chat, message: { text: 'hi' } });
      await insertJob(db, 'boom', {});
      await finished;
      const broadcastDone = waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobType === 'broadcast' && e.outcome.kind === 'completed', 20_000);
      await insertJob(db, 'broadcast', { message: { text: 'all' }, chat_ids: [10, 11, 12, 77] });
      await broadcastDone;
      // A job scheduled for later is pending but not yet due.
      await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, payload, run_at) VALUES ('send', '{}', now() + interval '1 hour')`);

      const unauthorized = await fetch(`${admin.url}/metrics`);
      assert.is(unauthorized.status, 401);
      const res = await fetch(`${admin.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
      assert.is(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
      assert.is(res.headers.get('cache-control'), 'no-store');
      const text = await res.text();

      assert.ok((sample(text, 'broadcast_queue_claims_total') ?? 0) >= 6, 'claims');
      assert.is(sample(text, 'broadcast_queue_job_outcomes_total', { job_type: 'send', outcome: 'completed' }), 3);
      assert.is(sample(text, 'broadcast_queue_job_outcomes_total', { job_type: 'send', outcome: 'failed' }), 1);
      assert.is(sample(text, 'broadcast_queue_job_outcomes_total', { job_type: 'boom', outcome: 'failed' }), 1);
      assert.is(sample(text, 'broadcast_queue_job_outcomes_total', { job_type: 'broadcast', outcome: 'completed' }), 1);
      assert.is(sample(text, 'broadcast_queue_job_failures_total', { job_type: 'send', reason: 'blocked' }), 1);
      assert.is(sample(text, 'broadcast_queue_job_failures_total', { job_type: 'boom', reason: 'handler_error' }), 1, "a handler's own error names no reason");

      assert.is(sample(text, 'broadcast_queue_messages_sent_total'), 6);
      assert.is(sample(text, 'broadcast_queue_deliveries_total', { job_type: 'send', outcome: 'sent' }), 3);
      assert.is(sample(text, 'broadcast_queue_deliveries_total', { job_type: 'send', outcome: 'blocked' }), 1);
      assert.is(sample(text, 'broadcast_queue_deliveries_total', { job_type: 'broadcast', outcome: 'sent' }), 3);
      assert.match(text, /# HELP broadcast_queue_messages_sent_total .*rate\(broadcast_queue_messages_sent_total/);

      assert.is(sample(text, 'broadcast_queue_jobs', { queue: 'broadcasts', status: 'completed' }), 4);
      assert.is(sample(text, 'broadcast_queue_jobs', { queue: 'broadcasts', status: 'failed' }), 2);
      assert.is(sample(text, 'broadcast_queue_jobs', { queue: 'broadcasts', status: 'pending' }), 1);
      assert.is(sample(text, 'broadcast_queue_jobs', { queue: 'broadcasts', status: 'cancelled' }), 0);
      assert.is(sample(text, 'broadcast_queue_depth', { queue: 'broadcasts' }), 0, 'the scheduled job is not due');
      assert.is(sample(text, 'broadcast_queue_oldest_pending_age_seconds', { queue: 'broadcasts' }), 0);
      assert.is(sample(text, 'broadcast_queue_listener_connected'), 1);
      assert.is(sample(text, 'broadcast_queue_active_jobs'), 0);
      assert.is(sample(text, 'broadcast_queue_telegram_halted'), 0);
      assert.is(sample(text, 'broadcast_queue_rate_limited_total'), 0);
      assert.is(sample(text, 'broadcast_queue_rate_limit_pause_seconds_total'), 0);

      assert.is(sample(text, 'broadcast_queue_job_start_latency_seconds_count', { job_type: 'send' }), 4);
      assert.is(sample(text, 'broadcast_queue_job_start_latency_seconds_bucket', { job_type: 'send', le: '+Inf' }), 4);
      assert.ok(sample(text, 'broadcast_queue_job_start_latency_seconds_bucket', { job_type: 'send', le: '0.001' }) !== undefined, 'the 1 ms bucket');
      assert.ok(sample(text, 'broadcast_queue_job_start_latency_seconds_bucket', { job_type: 'send', le: '60' }) !== undefined, 'the 60 s bucket');

      for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes']) {
        assert.ok(sample(text, name) !== undefined, name);
      }
    } finally {
      await admin.close();
    }
  });
});

test('a due job waiting shows in depth and oldest pending age', async () => {
  const db = await createTestDatabase();
  // Not started: nobody claims; metrics still read the database through the queue's pool.
  const queue = new BroadcastQueue({ connectionString: db.url, handlers: { noop: () => 'ran' } });
  try {
    await queue.db();
    await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, run_at) VALUES ('noop', now() - interval '90 seconds'), ('noop', now())`);
    const text = await queue.metrics().registry.metrics();
    assert.is(sample(text, 'broadcast_queue_depth', { queue: 'broadcasts' }), 2);
    const age = sample(text, 'broadcast_queue_oldest_pending_age_seconds', { queue: 'broadcasts' })!;
    assert.ok(age >= 90 && age < 3600, `age ${age}`);
    assert.is(sample(text, 'broadcast_queue_listener_connected'), 0);
  } finally {
    await queue.stop();
    await db.drop();
  }
});

test('429s count, with the pause they asked for', async () => {
  await withTelegram({ api: { retryAfterSeconds: 1 } }, async ({ db, api, queue }) => {
    const metrics = queue.metrics();
    api.setFaults({ storm: true });
    const snoozed = waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobType === 'send' && e.outcome.kind === 'snooze');
    const jobId = await insertJob(db, 'send', { chat_id: 6, message: { text: 'y' } });
    await snoozed;
    api.setFaults({ storm: false });
    await waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobId === jobId && e.outcome.kind === 'completed', 10_000);
    const text = await metrics.registry.metrics();
    const limited = sample(text, 'broadcast_queue_rate_limited_total')!;
    assert.ok(limited >= 1, `429s ${limited}`);
    assert.is(sample(text, 'broadcast_queue_rate_limit_pause_seconds_total'), limited * 1);
    assert.ok((sample(text, 'broadcast_queue_job_outcomes_total', { job_type: 'send', outcome: 'snooze' }) ?? 0) >= 1);
    assert.is(sample(text, 'broadcast_queue_deliveries_total', { job_type: 'send', outcome: 'deferred' }), limited);
    assert.is(sample(text, 'broadcast_queue_messages_sent_total'), 1);
  });
});

test('the listener gauge follows the LISTEN connection', async () => {
  await withTelegram({}, async ({ db, queue }) => {
    const metrics = queue.metrics();
    const gauge = async () => sample(await metrics.registry.metrics(), 'broadcast_queue_listener_connected');
    assert.is(await gauge(), 1);
    // Read at the moment of the drop (get() runs the gauge's collect synchronously before it awaits).
    const gaugeMetric = metrics.registry.getSingleMetric('broadcast_queue_listener_connected')!;
    const atDrop = new Promise<number | undefined>((resolve) => queue.once('listener:disconnected', () => void gaugeMetric.get().then((m) => resolve(m.values[0]?.value))));
    const down = waitForEvent(queue, 'listener:disconnected', undefined, 20_000);
    const up = waitForEvent(queue, 'listener:connected', undefined, 30_000);
    await db.pool.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'broadcast-queued listener'`);
    await down;
    assert.is(await atDrop, 0);
    await up;
    assert.is(await gauge(), 1);
  });
});

test('several queues in one process each have a registry of their own', async () => {
  const db = await createTestDatabase();
  const queues = [0, 1, 2].map(() => new BroadcastQueue({ connectionString: db.url, handlers: { noop: () => 'ran' } }));
  try {
    const registries = queues.map((q) => q.metrics().registry);
    assert.is(new Set(registries).size, 3);
    assert.is(queues[0]!.metrics(), queues[0]!.metrics(), 'one Metrics per queue');
    await queues[0]!.start();
    const ran = waitForEvent<JobEvent>(queues[0]!, 'job:done', (e) => e.job.jobType === 'noop');
    await insertJob(db, 'noop', {});
    await ran;
    const [first, second] = await Promise.all([registries[0]!.metrics(), registries[1]!.metrics()]);
    assert.is(sample(first, 'broadcast_queue_job_outcomes_total', { job_type: 'noop', outcome: 'completed' }), 1);
    assert.is(sample(second, 'broadcast_queue_job_outcomes_total', { job_type: 'noop', outcome: 'completed' }), undefined, 'another queue counts only its own jobs');
    assert.is(sample(second, 'broadcast_queue_jobs', { queue: 'broadcasts', status: 'completed' }), undefined, 'an unconnected queue reads no database');
  } finally {
    await Promise.all(queues.map((q) => q.stop()));
    await db.drop();
  }
});

test('queue labels come from the configuration: jobs in 500 other queues are one series, queue="other"', async () => {
  await withTelegram({ queue: { queues: ['broadcasts', 'urgent'] } }, async ({ db, queue }) => {
    await db.pool.query(`INSERT INTO broadcast_queue_jobs (queue, job_type) SELECT 'producer-' || g, 'nobody-handles-this' FROM generate_series(1, 500) g`);
    const text = await queue.metrics().registry.metrics();
    const labels = new Set([...text.matchAll(/^broadcast_queue_(?:jobs|depth|oldest_pending_age_seconds)\{[^}]*queue="([^"]*)"/gm)].map((m) => m[1]));
    assert.equal([...labels].sort(), ['broadcasts', 'other', 'urgent']);
    assert.is(sample(text, 'broadcast_queue_jobs', { queue: 'other', status: 'pending' }), 500);
    assert.is(sample(text, 'broadcast_queue_depth', { queue: 'other' }), 500);
    assert.is(sample(text, 'broadcast_queue_jobs', { queue: 'urgent', status: 'pending' }), 0);
  });
});

test('failure labels are the reason codes the send path recorded, one per Telegram class the stand-in answers', async () => {
  await withTelegram({ api: { retryAfterSeconds: 1 } }, async ({ db, api, queue }) => {
    const metrics = queue.metrics();
    api.setChatState(201, 'blocked');
    api.setChatState(202, 'not_found');
    api.flaky(204, 1, 502);
    const cases = [
      { chat: 201, message: { text: 'hi' }, reason: 'blocked' },
      { chat: 202, message: { text: 'hi' }, reason: 'chat_not_found' },
      { chat: 203, message: { text: '<b>unclosed', parse_mode: 'HTML' }, reason: 'content' },
      { chat: 204, message: { text: 'hi' }, reason: 'server_error' },
    ];
    const failed = collectEvents<JobEvent>(queue, 'job:done', cases.length, (e) => e.job.jobType === 'send' && e.outcome.kind === 'failed');
    // One attempt each: the 502 fails the job at once instead of waiting out the job backoff.
    for (const c of cases) {
      await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, payload, max_attempts) VALUES ('send', $1, 1)`, [JSON.stringify({ chat_id: c.chat, message: c.message })]);
    }
    const events = await failed;
    const byChat = new Map(events.map((e) => [e.job.payload.chat_id, e.outcome]));
    for (const c of cases) assert.is((byChat.get(c.chat) as { reason?: string } | undefined)?.reason, c.reason, `chat ${c.chat}`);
    const { rows } = await db.pool.query(`SELECT payload->>'chat_id' AS chat, last_error_reason, errors -> -1 ->> 'reason' AS history_reason FROM broadcast_queue_jobs WHERE job_type = 'send'`);
    for (const c of cases) {
      const row = rows.find((r) => Number(r.chat) === c.chat);
      assert.is(row?.last_error_reason, c.reason, `last_error_reason of chat ${c.chat}`);
      assert.is(row?.history_reason, c.reason, `the errors history of chat ${c.chat}`);
    }

    // A 429 snoozes the job (no failure), but the failed call still counts by its reason.
    api.setFaults({ storm: true });
    const snoozed = waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobType === 'send' && e.outcome.kind === 'snooze');
    await insertJob(db, 'send', { chat_id: 205, message: { text: 'hi' } });
    const snooze = await snoozed;
    api.setFaults({ storm: false });
    assert.is(snooze.outcome.kind === 'snooze' && snooze.outcome.reason, 'rate_limited');

    const text = await metrics.registry.metrics();
    for (const c of cases) {
      assert.is(sample(text, 'broadcast_queue_job_failures_total', { job_type: 'send', reason: c.reason }), 1, `job_failures_total{reason="${c.reason}"}`);
      assert.is(sample(text, 'broadcast_queue_delivery_errors_total', { job_type: 'send', reason: c.reason }), 1, `delivery_errors_total{reason="${c.reason}"}`);
    }
    assert.ok((sample(text, 'broadcast_queue_delivery_errors_total', { job_type: 'send', reason: 'rate_limited' }) ?? 0) >= 1, 'the 429');
    const labels = [...text.matchAll(/^broadcast_queue_(?:job_failures|delivery_errors)_total\{[^}]*reason="([^"]*)"/gm)].map((m) => m[1]!);
    for (const label of labels) assert.ok((REASON_CODES as readonly string[]).includes(label), `label ${label} is a reason code`);
  });
});

test("a broadcast records each failed recipient's reason in the ledger and counts it by reason", async () => {
  await withTelegram({}, async ({ db, api, queue }) => {
    const metrics = queue.metrics();
    api.setChatState(301, 'blocked');
    api.setChatState(302, 'kicked');
    api.setChatState(303, 'not_found');
    const done = waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobType === 'broadcast' && e.outcome.kind === 'completed', 20_000);
    await insertJob(db, 'broadcast', { message: { text: 'all' }, chat_ids: [300, 301, 302, 303] });
    await done;
    const { rows } = await db.pool.query(`SELECT chat_id, status, outcome, error_code, error_reason FROM broadcast_deliveries ORDER BY chat_id`);
    assert.equal(rows.map((r) => [Number(r.chat_id), r.status, r.outcome, r.error_code, r.error_reason]), [
      [300, 'sent', null, null, null],
      [301, 'failed', 'blocked', 403, 'blocked'],
      [302, 'failed', 'kicked', 403, 'blocked'],
      [303, 'failed', 'chat_not_found', 400, 'chat_not_found'],
    ]);
    const text = await metrics.registry.metrics();
    assert.is(sample(text, 'broadcast_queue_delivery_errors_total', { job_type: 'broadcast', reason: 'blocked' }), 2);
    assert.is(sample(text, 'broadcast_queue_delivery_errors_total', { job_type: 'broadcast', reason: 'chat_not_found' }), 1);
  });
});

test.run();
