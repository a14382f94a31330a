import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BroadcastQueue } from '../../src/broadcast-queue.js';
import { PermanentError } from '../../src/errors.js';
import { startAdminServer } from '../../src/http/admin-server.js';
import { MAX_FAILURE_REASONS, ReasonLabels, failureReason } from '../../src/http/metrics.js';
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
      assert.is(sample(text, 'broadcast_queue_job_failures_total', { job_type: 'boom', reason: 'boom: record n is broken' }), 1);

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

test('failure reasons: Telegram classes as labels, other errors normalised, at most 50 distinct', () => {
  assert.is(failureReason('blocked: Forbidden: bot was blocked by the user'), 'blocked');
  assert.is(failureReason('chat_not_found: Bad Request: chat not found'), 'chat_not_found');
  assert.is(failureReason('transient:http_502: Bad Gateway (attempt 3 of 3)'), 'transient:http_502');
  assert.is(failureReason('outcome unknown (transient:timeout): the message may have been delivered; not resent'), 'transient:timeout');
  assert.is(failureReason('Telegram refused the message: Bad Request: message is too long'), 'content');
  assert.is(failureReason('payload.chat_id must be an integer, got "abc"'), 'payload.chat_id must be an integer, got');
  assert.is(failureReason('Chat 42 said "no"'), 'chat n said "…"');
  assert.is(failureReason('job 123 failed after 4.5 s'), failureReason('job 9 failed after 10 s'));
  assert.is(failureReason(''), 'unknown');
  assert.ok(failureReason('x'.repeat(500)).length <= 40);

  const labels = new ReasonLabels(MAX_FAILURE_REASONS);
  const seen = new Set<string>();
  for (let i = 0; i < 80; i++) seen.add(labels.label(`error kind ${String.fromCharCode(97 + (i % 26))}${String.fromCharCode(97 + Math.floor(i / 26))}`));
  assert.is(seen.size, MAX_FAILURE_REASONS + 1);
  assert.ok(seen.has('other'));
  assert.is(labels.label('error kind aa'), 'error kind aa', 'a reason seen before keeps its label');
  assert.is(labels.label('blocked: Forbidden'), 'other', 'even a Telegram class, once the cap is reached');
});

test.run();
