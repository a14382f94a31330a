import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { startAdminServer, type AdminServer } from '../../src/http/admin-server.js';
import { retryJobs, failedJobs } from '../../src/queue/jobs-store.js';
import { cancelJobs, setBroadcastStatus } from '../../src/broadcast/control.js';
import { broadcastProgress } from '../../src/broadcast/progress.js';
import { statistics } from '../../src/http/statistics.js';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import type { Job } from '../../src/queue/claimer.js';
import { insertJob, jobRow, range, withTelegram, type TelegramWorld } from '../helpers/telegram.js';
import { collectEvents, waitForEvent } from '../helpers/wait.js';

const TOKEN = 'admin-test-token-0123456789abcdef';
const API = '/api/admin/queue';

interface Reply {
  status: number;
  headers: Headers;
  body: any;
}

/** One request; `token: null` sends none. The body is parsed as JSON when it is JSON. */
async function call(base: string, method: string, path: string, options: { token?: string | null; body?: string; headers?: Record<string, string> } = {}): Promise<Reply> {
  const token = options.token === undefined ? TOKEN : options.token;
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...options.headers },
    body: options.body,
  });
  const text = await res.text();
  let body: unknown = text;
  if ((res.headers.get('content-type') ?? '').includes('application/json')) body = JSON.parse(text);
  return { status: res.status, headers: res.headers, body };
}

async function withAdmin(world: TelegramWorld, body: (admin: AdminServer, api: (method: string, path: string, options?: Parameters<typeof call>[3]) => Promise<Reply>) => Promise<void>, options: { apiToken?: string } = { apiToken: TOKEN }): Promise<void> {
  const admin = await startAdminServer(world.queue, { host: '127.0.0.1', port: 0, apiToken: options.apiToken });
  try {
    await body(admin, (method, path, o) => call(admin.url, method, `${API}${path}`, o));
  } finally {
    await admin.close();
  }
}

const doneWith = (jobId: number, kinds?: string[]) => (e: JobEvent) => e.job.jobId === jobId && (!kinds || kinds.includes(e.outcome.kind));

function assertJson(r: Reply): void {
  assert.is(r.headers.get('content-type'), 'application/json; charset=utf-8');
  assert.is(r.headers.get('cache-control'), 'no-store');
}

test('every route but /health asks for the bearer token; the right one opens them all', async () => {
  await withTelegram({}, async (world) => {
    // Every wait is set up before the insert it waits for: a job may finish before insertJob returns.
    const ran = waitForEvent<JobEvent>(world.queue, 'job:done', (e) => e.job.jobType === 'send');
    const jobId = await insertJob(world.db, 'send', { chat_id: 5, message: { text: 'hi' } });
    await ran;
    await withAdmin(world, async (admin, api) => {
      const guarded: [string, string][] = [
        ['GET', '/status'], ['GET', '/statistics'], ['GET', '/broadcasts/failed'], ['GET', `/jobs/${jobId}`], ['GET', '/broadcasts/1'],
        ['POST', `/jobs/${jobId}/retry`], ['POST', `/jobs/${jobId}/cancel`], ['POST', '/broadcasts/1/pause'], ['POST', '/broadcasts/1/resume'],
        ['POST', '/broadcasts/1/cancel'], ['GET', '/no-such-route'], ['DELETE', `/jobs/${jobId}`],
        ['GET', '/schedules'], ['POST', '/schedules'], ['POST', '/schedules/x/pause'], ['POST', '/schedules/x/resume'],
        ['POST', '/schedules/x/run-now'], ['POST', '/schedules/x/remove'],
      ];
      for (const [method, path] of guarded) {
        for (const token of [null, 'wrong-token-wrong-token-wrong', `${TOKEN}x`]) {
          const r = await api(method, path, { token });
          assert.is(r.status, 401, `${method} ${path} with ${token ?? 'no token'}`);
          assertJson(r);
          assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer\b/);
          assert.type(r.body.error, 'string');
        }
      }
      // A scheme other than Bearer is no token at all.
      assert.is((await api('GET', '/status', { token: null, headers: { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` } })).status, 401);
      const metricsNoToken = await call(admin.url, 'GET', '/metrics', { token: null });
      assert.is(metricsNoToken.status, 401);
      assert.match(metricsNoToken.headers.get('www-authenticate') ?? '', /^Bearer\b/);

      const health = await api('GET', '/health', { token: null });
      assert.is(health.status, 200);
      assertJson(health);
      assert.is(health.body.status, 'healthy');

      const expected: [string, string, number][] = [
        ['GET', '/status', 200], ['GET', '/statistics', 200], ['GET', '/broadcasts/failed', 200], ['GET', `/jobs/${jobId}`, 200],
        ['GET', '/broadcasts/1', 404], ['POST', `/jobs/${jobId}/retry`, 409], ['POST', `/jobs/${jobId}/cancel`, 409],
        ['POST', '/broadcasts/1/pause', 404], ['POST', '/broadcasts/1/resume', 404], ['POST', '/broadcasts/1/cancel', 404],
        ['GET', '/no-such-route', 404], ['DELETE', `/jobs/${jobId}`, 405],
      ];
      for (const [method, path, status] of expected) {
        const r = await api(method, path);
        assert.is(r.status, status, `${method} ${path}: ${JSON.stringify(r.body)}`);
        assertJson(r);
      }
      const metrics = await call(admin.url, 'GET', '/metrics');
      assert.is(metrics.status, 200);
      assert.match(metrics.headers.get('content-type') ?? '', /^text\/plain/);
    });
  });
});

test('schedules: add, list, pause, run-now and remove through the API; bad input is a 400 that names it', async () => {
  await withTelegram({}, async (world) => {
    await withAdmin(world, async (_admin, api) => {
      const json = (body: unknown) => ({ body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
      const added = await api('POST', '/schedules', json({ name: 'weekly', cron: '0 9 * * 1', time_zone: 'Europe/Berlin', job_type: 'digest', payload: { week: 1 } }));
      assert.is(added.status, 201, JSON.stringify(added.body));
      assert.equal([added.body.name, added.body.time_zone, added.body.enabled], ['weekly', 'Europe/Berlin', true]);
      assert.is((await api('POST', '/schedules', json({ name: 'weekly', cron: '0 9 * * 1' }))).status, 409);
      const badZone = await api('POST', '/schedules', json({ name: 'z', cron: '0 9 * * 1', time_zone: 'Mars/Olympus' }));
      assert.equal([badZone.status, badZone.body.error], [400, 'time zone "Mars/Olympus" is not an IANA time zone (e.g. Europe/Berlin, America/New_York, UTC)']);
      assert.match((await api('POST', '/schedules', json({ name: 'c', cron: 'every monday' }))).body.error, /cron "every monday" is not valid/);
      assert.equal((await api('GET', '/schedules')).body.map((s: any) => s.name), ['weekly']);
      assert.is((await api('POST', '/schedules/weekly/pause')).body.enabled, false);
      const ran = await api('POST', '/schedules/weekly/run-now');
      assert.type(ran.body.job_id, 'number');
      assert.is((await api('POST', '/schedules/weekly/remove')).status, 200);
      assert.is((await api('POST', '/schedules/weekly/remove')).status, 404);
    });
  });
});

test('status, statistics, failed jobs and a job row show what ran', async () => {
  await withTelegram({}, async (world) => {
    const { db, api: bot, queue } = world;
    bot.setChatState(77, 'blocked');
    const sends = collectEvents<JobEvent>(queue, 'job:done', 2, (e) => e.job.jobType === 'send');
    const ok = await insertJob(db, 'send', { chat_id: 5, message: { text: 'ok' } });
    const bad = await insertJob(db, 'send', { chat_id: 77, message: { text: 'blocked' } });
    await sends;
    const broadcastDone = waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobType === 'broadcast' && e.outcome.kind === 'completed', 20_000);
    const broadcastJob = await insertJob(db, 'broadcast', { message: { text: 'all' }, chat_ids: range(1, 5) });
    await broadcastDone;

    await withAdmin(world, async (_admin, api) => {
      const status = await api('GET', '/status');
      assert.is(status.status, 200);
      assert.is(status.body.running, true);
      assert.is(status.body.listenerConnected, true);
      assert.equal([status.body.completed, status.body.failed, status.body.pending], [2, 1, 0]);
      assert.equal(status.body.queues.broadcasts.completed, 2);
      assert.is(status.body.activeJobs, 0);
      assert.is(status.body.daemons.length, 1);
      assert.ok(Array.isArray(status.body.unrunnable));
      assert.is(status.body.rateLimits.length, 1);
      assert.is(status.body.rateLimits[0].botId, 123456);
      assert.equal(status.body.broadcastsInProgress, []);
      assert.equal(status.body.telegram, { botId: 123456, halted: null });

      const stats = await api('GET', '/statistics');
      assert.is(stats.status, 200);
      assert.is(stats.body.total_jobs, 3);
      assert.equal([stats.body.completed, stats.body.failed, stats.body.pending, stats.body.processing, stats.body.cancelled], [2, 1, 0, 0, 0]);
      assert.equal(stats.body.by_job_type.send, { total: 2, waiting: 0, pending: 0, processing: 0, completed: 1, failed: 1, cancelled: 0 });
      assert.is(stats.body.by_job_type.broadcast.completed, 1);
      assert.equal([stats.body.completed_last_hour, stats.body.completed_last_24h, stats.body.failed_last_hour, stats.body.failed_last_24h], [2, 2, 1, 1]);
      assert.type(stats.body.average_duration_seconds_last_hour, 'number');
      assert.is(stats.body.retried_jobs, 0);
      assert.equal([stats.body.messages_sent_last_hour, stats.body.messages_sent_last_24h], [5, 5]);

      const failed = await api('GET', '/broadcasts/failed');
      assert.is(failed.status, 200);
      assert.is(failed.body.length, 1);
      assert.is(failed.body[0].job_id, bad);
      assert.is(failed.body[0].job_type, 'send');
      assert.match(failed.body[0].last_error, /blocked/);
      assert.is(failed.body[0].last_error_reason, 'blocked', 'the reason code beside the words');
      assert.is(failed.body[0].attempts, 1);
      assert.type(failed.body[0].finished_at, 'string');
      assert.equal(failed.body[0].payload, { chat_id: 77, message: { text: 'blocked' } });
      assert.is((await api('GET', '/broadcasts/failed?limit=1')).body.length, 1);
      assert.is((await api('GET', '/broadcasts/failed?limit=100000')).status, 200, 'a large limit is capped, not refused');
      for (const limit of ['0', '-1', 'abc', '1.5']) {
        const r = await api('GET', `/broadcasts/failed?limit=${limit}`);
        assert.is(r.status, 400, limit);
        assert.match(r.body.error, /limit must be a whole number/);
      }

      const job = await api('GET', `/jobs/${ok}`);
      assert.is(job.status, 200);
      assert.equal([job.body.job_id, job.body.status, job.body.job_type, job.body.attempts], [ok, 'completed', 'send', 1]);
      assert.is(job.body.result.chat_id, 5);
      assert.is(job.body.last_error_reason, null, 'a job that never failed has no reason');
      const badJob = await api('GET', `/jobs/${bad}`);
      assert.equal([badJob.body.last_error_reason, badJob.body.errors.at(-1).reason], ['blocked', 'blocked']);
      assert.is((await api('GET', `/jobs/${ok}/`)).status, 200, 'a trailing slash is forgiven');

      const broadcastId = (await jobRow(db, broadcastJob)).payload.broadcast_id;
      const b = await api('GET', `/broadcasts/${broadcastId}`);
      assert.is(b.status, 200);
      assert.equal([b.body.broadcast_id, b.body.status, b.body.total, b.body.sent, b.body.done, b.body.progress, b.body.eta_seconds], [broadcastId, 'completed', 5, 5, 5, 1, null]);
      assert.equal(b.body.audience, { chat_ids_count: 5 }, 'an explicit chat list is shown as a count');
      assert.equal(b.body.message, { text: 'all' });
      assert.type(b.body.rate_per_second, 'number');
    });
  });
});

test('bad ids are 400, unknown ids 404, unknown routes 404, wrong methods 405, big bodies 413, bad JSON 400', async () => {
  await withTelegram({}, async (world) => {
    await withAdmin(world, async (admin, api) => {
      const badIds = ['abc', '0', '-1', '1.5', '1e3', '9007199254740993', '99999999999999999999', '%20', '0x10', '%E0%A4%A'];
      for (const id of badIds) {
        for (const [method, path] of [['GET', `/jobs/${id}`], ['POST', `/jobs/${id}/retry`], ['POST', `/jobs/${id}/cancel`], ['GET', `/broadcasts/${id}`], ['POST', `/broadcasts/${id}/pause`]] as const) {
          const r = await api(method, path);
          assert.is(r.status, 400, `${method} ${path}: ${JSON.stringify(r.body)}`);
          assertJson(r);
          assert.match(r.body.error, /^(job|broadcast) id must be a positive integer, got "/);
        }
      }
      assert.equal((await api('GET', '/jobs/abc')).body, { error: 'job id must be a positive integer, got "abc"' });
      assert.is((await api('GET', '/jobs/9007199254740992')).status, 404, '2^53 itself is a valid id');

      for (const [method, path, error] of [
        ['GET', '/jobs/424242', /job 424242 does not exist/], ['POST', '/jobs/424242/retry', /job 424242 does not exist/],
        ['POST', '/jobs/424242/cancel', /job 424242 does not exist/], ['GET', '/broadcasts/424242', /broadcast 424242 does not exist/],
        ['POST', '/broadcasts/424242/pause', /does not exist/], ['POST', '/broadcasts/424242/resume', /does not exist/], ['POST', '/broadcasts/424242/cancel', /does not exist/],
      ] as const) {
        const r = await api(method, path);
        assert.is(r.status, 404, `${method} ${path}`);
        assert.match(r.body.error, error);
      }

      for (const path of ['/', '/nope', '/jobs', '/jobs/1/frobnicate', '/broadcasts/1/pause/now', '/jobs/1/retry/']) {
        const r = await api('GET', path);
        if (path === '/jobs/1/retry/') {
          assert.is(r.status, 405, path);
          continue;
        }
        assert.is(r.status, 404, path);
        assertJson(r);
        assert.type(r.body.error, 'string');
      }
      const outside = await call(admin.url, 'GET', '/api/other');
      assert.is(outside.status, 404);
      assertJson(outside);

      for (const [method, path, allow] of [
        ['POST', '/health', 'GET, HEAD'], ['DELETE', '/jobs/1', 'GET, HEAD'], ['GET', '/jobs/1/retry', 'POST'], ['PUT', '/broadcasts/1/pause', 'POST'],
        ['POST', '/status', 'GET, HEAD'], ['PATCH', '/statistics', 'GET, HEAD'],
      ] as const) {
        const r = await api(method, path);
        assert.is(r.status, 405, `${method} ${path}`);
        assertJson(r);
        assert.is(r.headers.get('allow'), allow);
      }
      const postMetrics = await call(admin.url, 'POST', '/metrics');
      assert.is(postMetrics.status, 405);

      // HEAD works wherever GET does and sends no body.
      const head = await fetch(`${admin.url}${API}/status`, { method: 'HEAD', headers: { authorization: `Bearer ${TOKEN}` } });
      assert.is(head.status, 200);
      assert.is(await head.text(), '');

      const jobId = await insertJob(world.db, 'nobody-handles-this', {});
      const big = await rawRequest(admin.url, 'POST', `${API}/jobs/${jobId}/cancel`, 'x'.repeat(100 * 1024), { 'content-type': 'application/json' });
      assert.is(big.status, 413);
      assert.match(big.body, /larger than 65536 bytes/);
      const chunked = await rawRequest(admin.url, 'POST', `${API}/jobs/${jobId}/cancel`, ['{"a":"', 'y'.repeat(70 * 1024), '"}'], { 'content-type': 'application/json' });
      assert.is(chunked.status, 413, 'a chunked body without a length is cut off at the cap too');
      assert.is((await jobRow(world.db, jobId)).status, 'pending', 'a refused request changes nothing');

      for (const body of ['{nope', '{"a":', '[1,2]', '"text"', '42']) {
        const r = await api('POST', `/jobs/${jobId}/cancel`, { body, headers: { 'content-type': 'application/json' } });
        assert.is(r.status, 400, body);
        assert.match(r.body.error, /request body/);
      }
      assert.is((await jobRow(world.db, jobId)).status, 'pending');
      const withBody = await api('POST', `/jobs/${jobId}/cancel`, { body: '{"reason":"test"}', headers: { 'content-type': 'application/json' } });
      assert.is(withBody.status, 200, 'an object body is accepted');
      assert.is(withBody.body.job.status, 'cancelled');
    });
  });
});

/** A request through node:http, for bodies fetch would not send as given (chunks, early answers). */
function rawRequest(base: string, method: string, path: string, body: string | string[], headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${path}`, { method, headers: { authorization: `Bearer ${TOKEN}`, ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, body: text }));
    });
    // The server may answer 413 and close before the whole body is written.
    req.on('error', (error: NodeJS.ErrnoException) => (error.code === 'EPIPE' || error.code === 'ECONNRESET' ? undefined : reject(error)));
    if (Array.isArray(body)) for (const part of body) req.write(part);
    req.end(Array.isArray(body) ? undefined : body);
  });
}

test('retry puts a failed job back and the daemon runs it again at once', async () => {
  await withTelegram({}, async (world) => {
    const { db, api: bot, queue } = world;
    bot.setChatState(77, 'blocked');
    const failed = waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobType === 'send' && e.outcome.kind === 'failed');
    const { rows } = await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, payload, max_attempts) VALUES ('send', $1, 1) RETURNING job_id`, [{ chat_id: 77, message: { text: 'again' } }]);
    const jobId: number = rows[0].job_id;
    await failed;
    bot.setChatState(77, null);
    await withAdmin(world, async (_admin, api) => {
      const ran = waitForEvent<JobEvent>(queue, 'job:done', doneWith(jobId));
      const r = await api('POST', `/jobs/${jobId}/retry`);
      assert.is(r.status, 200, JSON.stringify(r.body));
      assert.is(r.body.outcome, 'retried');
      assert.equal([r.body.job.status, r.body.job.attempts, r.body.job.max_attempts, r.body.job.finished_at], ['pending', 1, 2, null]);
      const done = await ran;
      assert.is(done.outcome.kind, 'completed');
      assert.is(done.job.attempt, 2);
      assert.is(bot.deliveredCount(77), 1);

      const again = await api('POST', `/jobs/${jobId}/retry`);
      assert.is(again.status, 409);
      assert.equal(again.body, { error: `job ${jobId} is completed; only failed or cancelled jobs can be retried`, status: 'completed' });
      const row = await api('GET', `/jobs/${jobId}`);
      assert.equal([row.body.status, row.body.attempts], ['completed', 2]);
    });
  });
});

test('cancel: a pending job is cancelled, a running one is refused, and retry brings a cancelled one back', async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  await withTelegram({ queue: { handlers: { slow: () => gate } } }, async (world) => {
    const { db, queue } = world;
    const later = (await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, payload, run_at) VALUES ('send', '{"chat_id": 1, "message": {"text": "later"}}', now() + interval '1 hour') RETURNING job_id`)).rows[0].job_id as number;
    const started = waitForEvent<Job>(queue, 'job:start', (j) => j.jobType === 'slow');
    const slow = await insertJob(db, 'slow', {});
    await started;
    try {
      await withAdmin(world, async (_admin, api) => {
        const cancelled = await api('POST', `/jobs/${later}/cancel`);
        assert.is(cancelled.status, 200, JSON.stringify(cancelled.body));
        assert.is(cancelled.body.outcome, 'cancelled');
        assert.is(cancelled.body.job.status, 'cancelled');
        assert.type(cancelled.body.job.finished_at, 'string');
        const twice = await api('POST', `/jobs/${later}/cancel`);
        assert.is(twice.status, 409);
        assert.match(twice.body.error, /is cancelled; only pending or waiting jobs/);

        const running = await api('POST', `/jobs/${slow}/cancel`);
        assert.is(running.status, 409);
        assert.match(running.body.error, /running; cancel its broadcast instead/);
        assert.is(running.body.status, 'processing');
        assert.is((await api('POST', `/jobs/${slow}/retry`)).status, 409);

        // Due now: the daemon runs it.
        const ran = waitForEvent<JobEvent>(queue, 'job:done', doneWith(later, ['completed']));
        const back = await api('POST', `/jobs/${later}/retry`);
        assert.is(back.status, 200);
        assert.equal([back.body.job.status, back.body.job.max_attempts], ['pending', 3]);
        await ran;
      });
    } finally {
      // Released whatever happened: stop() would otherwise wait for the handler forever.
      const done = waitForEvent<JobEvent>(queue, 'job:done', doneWith(slow));
      release();
      await done;
    }
  });
});

test('pause, resume and cancel a running broadcast through the API', async () => {
  await withTelegram({ queue: { rateLimit: 50 } }, async (world) => {
    const { db, api: bot, queue } = world;
    await withAdmin(world, async (_admin, api) => {
      const firstDelivery = bot.waitFor('delivered');
      const jobId = await insertJob(db, 'broadcast', { message: { text: 'slow' }, chat_ids: range(1, 300) });
      await firstDelivery;
      const broadcastId: number = (await jobRow(db, jobId)).payload.broadcast_id;

      const live = await api('GET', `/broadcasts/${broadcastId}`);
      assert.equal([live.body.status, live.body.total, live.body.job_id], ['sending', 300, jobId]);
      assert.ok(live.body.progress >= 0 && live.body.progress < 1);
      const inProgress = (await api('GET', '/status')).body.broadcastsInProgress;
      assert.equal(inProgress.map((b: any) => b.broadcast_id), [broadcastId]);

      const snoozed = waitForEvent<JobEvent>(queue, 'job:done', doneWith(jobId), 10_000);
      const paused = await api('POST', `/broadcasts/${broadcastId}/pause`);
      assert.is(paused.status, 200, JSON.stringify(paused.body));
      assert.is(paused.body.status, 'paused');
      assert.is((await snoozed).outcome.kind, 'snooze');
      const deliveredWhilePaused = bot.delivered.length;
      const pausedAgain = await api('POST', `/broadcasts/${broadcastId}/pause`);
      assert.is(pausedAgain.status, 409);
      assert.equal(pausedAgain.body, { error: `broadcast ${broadcastId} is paused; pause applies only to a broadcast that is sending, queued, draft`, status: 'paused' });

      const restarted = waitForEvent<Job>(queue, 'job:start', (j) => j.jobId === jobId, 10_000);
      const resumed = await api('POST', `/broadcasts/${broadcastId}/resume`);
      assert.is(resumed.status, 200);
      assert.is(resumed.body.status, 'sending');
      await restarted;
      await waitForEvent(bot, 'delivered', () => true, 10_000);
      assert.ok(bot.delivered.length > deliveredWhilePaused, 'sending resumed');
      assert.is((await api('POST', `/broadcasts/${broadcastId}/resume`)).status, 409);

      const finished = waitForEvent<JobEvent>(queue, 'job:done', doneWith(jobId, ['completed', 'failed']), 10_000);
      const cancelled = await api('POST', `/broadcasts/${broadcastId}/cancel`);
      assert.is(cancelled.status, 200);
      assert.is(cancelled.body.status, 'cancelled');
      assert.is((await finished).outcome.kind, 'completed');
      const result = (await jobRow(db, jobId)).result;
      assert.is(result.status, 'cancelled');
      assert.is(result.sent, bot.delivered.length);
      assert.is(result.sent + result.skipped, 300);
      const after = await api('GET', `/broadcasts/${broadcastId}`);
      assert.equal([after.body.status, after.body.sent, after.body.skipped, after.body.progress, after.body.eta_seconds], ['cancelled', result.sent, result.skipped, 1, null]);
      for (const action of ['pause', 'resume', 'cancel']) assert.is((await api('POST', `/broadcasts/${broadcastId}/${action}`)).status, 409, action);
    });
  });
});

test('cancelling a broadcast job: a running one through its broadcast, a paused (pending) one at once', async () => {
  await withTelegram({ queue: { rateLimit: 50 } }, async (world) => {
    const { db, api: bot, queue } = world;
    await withAdmin(world, async (_admin, api) => {
      // Running: the engine stops at its next control check; the job completes as 'cancelled'.
      const firstDelivery = bot.waitFor('delivered');
      const first = await insertJob(db, 'broadcast', { message: { text: 'one' }, chat_ids: range(1, 200) });
      await firstDelivery;
      const finished = waitForEvent<JobEvent>(queue, 'job:done', doneWith(first, ['completed', 'failed']), 10_000);
      const r = await api('POST', `/jobs/${first}/cancel`);
      assert.is(r.status, 200, JSON.stringify(r.body));
      assert.is(r.body.outcome, 'broadcast_cancelled');
      assert.is(r.body.broadcast_id, (await jobRow(db, first)).payload.broadcast_id);
      await finished;
      const result = (await jobRow(db, first)).result;
      assert.is(result.status, 'cancelled');
      assert.is(result.sent + result.skipped, 200);

      // Paused, its job waiting as pending: cancelling the job closes the broadcast too.
      const secondDelivery = bot.waitFor('delivered', (d) => Number(d.chatId) > 1000);
      const second = await insertJob(db, 'broadcast', { message: { text: 'two' }, chat_ids: range(1001, 200) });
      await secondDelivery;
      const broadcastId: number = (await jobRow(db, second)).payload.broadcast_id;
      const snoozed = waitForEvent<JobEvent>(queue, 'job:done', doneWith(second), 10_000);
      assert.is((await api('POST', `/broadcasts/${broadcastId}/pause`)).status, 200);
      assert.is((await snoozed).outcome.kind, 'snooze');
      const c = await api('POST', `/jobs/${second}/cancel`);
      assert.is(c.status, 200, JSON.stringify(c.body));
      assert.is(c.body.outcome, 'cancelled');
      const b = (await api('GET', `/broadcasts/${broadcastId}`)).body;
      assert.is(b.status, 'cancelled');
      assert.type(b.finished_at, 'string');
      assert.is(b.sent + b.skipped + b.failed + b.blocked + b.unknown, 200, 'every recipient is accounted for');
      const pendingRows = await db.pool.query(`SELECT count(*)::int AS n FROM broadcast_deliveries WHERE broadcast_id = $1 AND status = 'pending'`, [broadcastId]);
      assert.is(pendingRows.rows[0].n, 0);
    });
  });
});

test('/health is 200 while all is well and 503 with the reason once Telegram rejects the token', async () => {
  await withTelegram({}, async (world) => {
    const { db, api: bot, queue } = world;
    await withAdmin(world, async (_admin, api) => {
      const ok = await api('GET', '/health', { token: null });
      assert.is(ok.status, 200);
      assert.is(ok.body.status, 'healthy');
      assert.is(ok.body.reasons, undefined);
      assert.is(ok.body.running, true);
      assert.equal(ok.body.listener, { connected: true });
      assert.is(ok.body.database.reachable, true);
      assert.type(ok.body.database.latencyMs, 'number');
      assert.equal(ok.body.processor, { running: true, paused: false, activeJobs: 0, concurrency: 4 });
      assert.equal(ok.body.telegram, { botId: 123456, halted: null });

      bot.setToken('654321:another-token-abcdefghijklmnopqr');
      const halted = waitForEvent(queue, 'halt');
      await insertJob(db, 'send', { chat_id: 9, message: { text: 'z' } });
      await halted;
      const bad = await api('GET', '/health', { token: null });
      assert.is(bad.status, 503);
      assertJson(bad);
      assert.is(bad.body.status, 'unhealthy');
      assert.is(bad.body.reasons.length, 1);
      assert.match(bad.body.reasons[0], /Telegram sending is halted: .*401/);
      assert.match(bad.body.telegram.halted, /401/);
    });
  });
});

test('/health is 503 when the queue is not running, and the other routes say so', async () => {
  await withTelegram({}, async (world) => {
    await withAdmin(world, async (_admin, api) => {
      await world.queue.stop();
      const r = await api('GET', '/health', { token: null });
      assert.is(r.status, 503);
      assert.equal(r.body.reasons, ['the queue is not running', 'no database connection', 'the LISTEN connection is down (jobs still run on the fallback sweep)']);
      assert.equal(r.body.database, { reachable: false, latencyMs: null });
      const status = await api('GET', '/status');
      assert.is(status.status, 503);
      assert.match(status.body.error, /not running/);
    });
  });
});

test('the handler mounted under a prefix, as Express mounts it (the prefix stripped from req.url)', async () => {
  await withTelegram({}, async (world) => {
    const handler = world.queue.adminHandler({ apiToken: TOKEN });
    const server = http.createServer((req, res) => {
      const url = req.url ?? '/';
      const prefix = '/admin/queue';
      if (!url.startsWith(prefix)) {
        res.writeHead(418).end('not mine');
        return;
      }
      // What Express's app.use(prefix, handler) does: req.url relative to the mount, originalUrl kept.
      Object.assign(req, { originalUrl: url });
      req.url = url.slice(prefix.length) || '/';
      if (req.url.startsWith('?')) req.url = `/${req.url}`;
      // And what express.json() leaves behind for a JSON POST: the stream read, req.body set.
      if (req.method === 'POST' && url.includes('parsed')) {
        req.url = req.url.replace('?parsed', '');
        let text = '';
        req.setEncoding('utf8');
        req.on('data', (c: string) => (text += c));
        req.on('end', () => {
          Object.assign(req, { _body: true, body: JSON.parse(text || '{}') });
          handler(req, res, () => res.writeHead(500).end('next was called'));
        });
        return;
      }
      handler(req, res, () => res.writeHead(500).end('next was called'));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const health = await call(base, 'GET', '/admin/queue/health', { token: null });
      assert.is(health.status, 200);
      assert.is(health.body.status, 'healthy');
      assert.is((await call(base, 'GET', '/admin/queue/status', { token: null })).status, 401);
      assert.is((await call(base, 'GET', '/admin/queue/status')).status, 200);
      assert.is((await call(base, 'GET', '/admin/queue/broadcasts/failed?limit=5')).status, 200);
      assert.is((await call(base, 'GET', '/admin/queue')).status, 404, 'the mount point itself is no route');
      const jobId = await insertJob(world.db, 'nobody-handles-this', {});
      const cancelled = await call(base, 'POST', `/admin/queue/jobs/${jobId}/cancel?parsed`, { body: '{"why":"test"}', headers: { 'content-type': 'application/json' } });
      assert.is(cancelled.status, 200, 'a body Express already parsed is not read again');
      assert.is(cancelled.body.job.status, 'cancelled');
    } finally {
      server.close();
      server.closeAllConnections();
    }
  });
});

test('startAdminServer refuses a non-loopback host without a token', async () => {
  await withTelegram({}, async (world) => {
    for (const host of ['0.0.0.0', '::', '192.168.1.10', '']) {
      let error: Error | null = null;
      try {
        const server = await startAdminServer(world.queue, { host, port: 0 });
        await server.close();
      } catch (e) {
        error = e as Error;
      }
      assert.ok(error, `listened on "${host}" without a token`);
      assert.match(error!.message, /refusing to serve the admin API on .* without an API token/);
    }
    let emptyToken: Error | null = null;
    try {
      await (await startAdminServer(world.queue, { host: '127.0.0.1', port: 0, apiToken: '  ' })).close();
    } catch (e) {
      emptyToken = e as Error;
    }
    assert.match(emptyToken?.message ?? '', /apiToken must be a non-empty string/);
    const local = await startAdminServer(world.queue, { host: '127.0.0.1', port: 0 });
    try {
      assert.match(local.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.is((await call(local.url, 'GET', `${API}/status`, { token: null })).status, 200, 'no token set: open on loopback');
    } finally {
      await local.close();
    }
  });
});

test('a slow client cannot hold the server: half-sent headers are cut off at the server\'s timeout', async () => {
  await withTelegram({}, async (world) => {
    const admin = await startAdminServer(world.queue, { host: '127.0.0.1', port: 0, apiToken: TOKEN, requestTimeoutMs: 400, headersTimeoutMs: 300 });
    try {
      const { port } = new URL(admin.url);
      const socket = net.connect(Number(port), '127.0.0.1');
      await once(socket, 'connect');
      let received = '';
      socket.setEncoding('utf8');
      socket.on('data', (c: string) => (received += c));
      socket.on('error', () => undefined);
      const closed = once(socket, 'close');
      socket.write(`GET ${API}/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: `);
      // Nothing more is ever sent; the server must close the connection on its own.
      await Promise.race([closed, new Promise((_r, reject) => setTimeout(() => reject(new Error('the server kept a slow client open')), 15_000).unref())]);
      assert.match(received, /^HTTP\/1\.1 408/);

      // The server still answers everyone else.
      assert.is((await call(admin.url, 'GET', `${API}/health`, { token: null })).status, 200);
    } finally {
      await admin.close();
    }
  });
});

test('the query module works on its own, as bqctl uses it', async () => {
  await withTelegram({}, async (world) => {
    const { db } = world;
    const a = await insertJob(db, 'nobody-handles-this', {});
    const b = await insertJob(db, 'nobody-handles-this', {});
    const cancelled = await cancelJobs(db.pool, [a, b, a, 424242]);
    assert.equal(cancelled.map((r) => [r.job_id, r.outcome]), [[a, 'cancelled'], [b, 'cancelled'], [424242, 'not_found']]);
    const retried = await retryJobs(db.pool, [b, a, 424242]);
    assert.equal(retried.map((r) => [r.job_id, r.outcome]), [[b, 'retried'], [a, 'retried'], [424242, 'not_found']]);
    const conflicts = await retryJobs(db.pool, [a]);
    assert.equal(conflicts, [{ job_id: a, outcome: 'conflict', status: 'pending', error: `job ${a} is pending; only failed or cancelled jobs can be retried` }]);

    // A job key taken by another unfinished job meanwhile: that retry is refused, the others go on.
    const keyed = (await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, job_key, status, finished_at) VALUES ('nobody-handles-this', 'k1', 'failed', now()) RETURNING job_id`)).rows[0].job_id;
    await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, job_key) VALUES ('nobody-handles-this', 'k1')`);
    const c = await insertJob(db, 'nobody-handles-this', {});
    await cancelJobs(db.pool, [c]);
    const mixed = await retryJobs(db.pool, [keyed, c]);
    assert.equal(mixed.map((r) => r.outcome), ['conflict', 'retried']);
    assert.match((mixed[0] as { error: string }).error, /another unfinished job holds its job_key "k1"/);

    const draft = (await db.pool.query(`INSERT INTO broadcasts (title, message) VALUES ('d', '{"text": "x"}') RETURNING broadcast_id`)).rows[0].broadcast_id;
    const resumeDraft = await setBroadcastStatus(db.pool, draft, 'resume');
    assert.is(resumeDraft.outcome, 'conflict');
    const pause = await setBroadcastStatus(db.pool, draft, 'pause');
    assert.is(pause.outcome, 'updated');
    assert.is(pause.outcome === 'updated' && pause.broadcast.status, 'paused');
    const cancel = await setBroadcastStatus(db.pool, draft, 'cancel');
    assert.is(cancel.outcome === 'updated' && cancel.broadcast.status, 'cancelled');
    assert.equal(await setBroadcastStatus(db.pool, 424242, 'cancel'), { outcome: 'not_found' });
    assert.is(await broadcastProgress(db.pool, 424242), null);
    const progress = await broadcastProgress(db.pool, draft);
    assert.equal([progress!.total, progress!.progress, progress!.eta_seconds], [0, 1, null]);

    const stats = await statistics(db.pool);
    assert.is(stats.totalJobs, 5);
    assert.is(stats.byStatus.pending, 4);
    assert.equal(await failedJobs(db.pool, 10), [], 'only send and broadcast jobs are listed');
  });
});

test.run();
