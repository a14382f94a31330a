import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http from 'node:http';
import { createHmac } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, verifyWebhook } from '../../src/broadcast/webhook.js';
import { deliverWebhook } from '../../src/jobs/webhook-job.js';
import { listMigrations, migrate } from '../../src/db/migrate.js';
import { silentLogger } from '../../src/log.js';
import { createTestDatabase } from '../helpers/db.js';
import { insertJob, jobRow, range, withTelegram } from '../helpers/telegram.js';
import { waitForEvent, watchJobs } from '../helpers/wait.js';

const SECRET = 'webhook-secret-for-tests';

/** The signature computed here, independently of the library's signWebhook. */
const hmac = (secret: string, timestamp: number | string, body: string) => `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;

interface Receiver {
  url: string;
  received: { headers: http.IncomingHttpHeaders; body: string }[];
  close(): void;
}

async function receiver(answer: (n: number) => { status: number; headers?: Record<string, string> }): Promise<Receiver> {
  const received: Receiver['received'] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      const a = answer(received.length);
      res.writeHead(a.status, a.headers).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, received, close: () => (server.close(), server.closeAllConnections()) };
}

test('a finished broadcast POSTs a signed summary, retried through the queue until the receiver accepts it', async () => {
  const hook = await receiver((n) => ({ status: n === 1 ? 503 : 200 }));
  try {
    await withTelegram({ queue: { webhook: { url: hook.url, secret: SECRET }, retryBaseMs: 100 } }, async ({ db, queue }) => {
      const jobs = watchJobs(queue);
      await insertJob(db, 'broadcast', { title: 'promo', message: { text: 'hi' }, chat_ids: range(1, 5) });
      await jobs.doneMany(1, (e) => e.job.jobType === 'webhook' && e.outcome.kind === 'completed', 15_000);
      assert.is(hook.received.length, 2, 'the 503 was retried once');
      const last = hook.received[1]!;
      const payload = JSON.parse(last.body);
      assert.is(payload.event, 'broadcast.finished');
      assert.equal([payload.broadcast.status, payload.broadcast.total, payload.broadcast.sent, payload.broadcast.title], ['completed', 5, 5, 'promo']);
      assert.is(last.headers[SIGNATURE_HEADER], hmac(SECRET, last.headers[TIMESTAMP_HEADER] as string, last.body));
      assert.ok(verifyWebhook(SECRET, last.headers, last.body, { toleranceSeconds: 3600 }));
    });
  } finally {
    hook.close();
  }
});

test('a webhook job the daemon did not enqueue is never signed or sent, whatever its payload says', async () => {
  const hook = await receiver(() => ({ status: 200 }));
  try {
    await withTelegram({ queue: { webhook: { url: hook.url, secret: SECRET } } }, async ({ db, queue }) => {
      const real = waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobType === 'webhook', 15_000);
      await insertJob(db, 'broadcast', { message: { text: 'hi' }, chat_ids: range(1, 3) });
      assert.is((await real).outcome.kind, 'completed');
      assert.is(hook.received.length, 1);
      const broadcastId = JSON.parse(hook.received[0]!.body).broadcast.broadcast_id;

      const forgeries = [
        // The issue's forgery: a body of the inserter's choosing.
        { event: 'broadcast.finished', broadcast: { broadcast_id: broadcastId, status: 'completed', total: 1000000, sent: 1000000 } },
        // A real broadcast's id, by hand: the row names the daemon's own job, not this one.
        { event: 'broadcast.finished', broadcast_id: broadcastId },
        { broadcast_id: 987654 },
      ];
      for (const payload of forgeries) {
        const done = waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobType === 'webhook', 15_000);
        const id = await insertJob(db, 'webhook', payload);
        const event = await done;
        assert.is(event.job.jobId, id);
        assert.is(event.outcome.kind, 'failed', JSON.stringify(payload));
        assert.match((await jobRow(db, id)).last_error, /nothing was signed or sent|not by hand/);
      }
      assert.is(hook.received.length, 1, 'the receiver saw only the daemon\'s own webhook');
    });
  } finally {
    hook.close();
  }
});

test('a redirect from the webhook receiver is a failure with the reason; the signed body goes nowhere else', async () => {
  const elsewhere = await receiver(() => ({ status: 200 }));
  const hook = await receiver(() => ({ status: 307, headers: { location: elsewhere.url } }));
  try {
    await withTelegram({ queue: { webhook: { url: hook.url, secret: SECRET } } }, async ({ db, queue }) => {
      const done = waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobType === 'webhook', 15_000);
      await insertJob(db, 'broadcast', { message: { text: 'hi' }, chat_ids: [1] });
      const event = await done;
      assert.is(event.outcome.kind, 'failed');
      assert.match((await jobRow(db, event.job.jobId)).last_error, /answered 307 redirecting to http:\/\/127\.0\.0\.1:\d+\/hook; redirects are not followed/);
      assert.is(hook.received.length, 1);
      assert.is(elsewhere.received.length, 0, 'the redirect was not followed');
    });
  } finally {
    hook.close();
    elsewhere.close();
  }
});

test('verifyWebhook: accepts a good signature, refuses a bad one, a changed body and a stale or future timestamp', () => {
  const body = JSON.stringify({ event: 'broadcast.finished', broadcast: { broadcast_id: 7, sent: 3 } });
  const now = 1_800_000_000;
  const headers = { [TIMESTAMP_HEADER]: String(now), [SIGNATURE_HEADER]: hmac(SECRET, now, body) };
  assert.ok(verifyWebhook(SECRET, headers, body, { now }));
  assert.ok(verifyWebhook(SECRET, headers, Buffer.from(body), { now: now + 299 }), 'raw bytes, inside the default 300 s window');
  assert.ok(verifyWebhook(SECRET, new Headers(headers), body, { now }), 'a fetch Headers object');
  assert.not.ok(verifyWebhook('another-secret', headers, body, { now }), 'another key');
  assert.not.ok(verifyWebhook(SECRET, headers, body.replace('"sent":3', '"sent":4'), { now }), 'a changed body');
  assert.not.ok(verifyWebhook(SECRET, { ...headers, [SIGNATURE_HEADER]: hmac(SECRET, now, body).replace(/.$/, (c) => (c === '0' ? '1' : '0')) }, body, { now }), 'a bad signature');
  assert.not.ok(verifyWebhook(SECRET, { ...headers, [SIGNATURE_HEADER]: 'sha256=abc' }, body, { now }), 'a malformed signature');
  assert.not.ok(verifyWebhook(SECRET, { [TIMESTAMP_HEADER]: String(now) }, body, { now }), 'no signature');
  assert.not.ok(verifyWebhook(SECRET, headers, body, { now: now + 301 }), 'stale: replayed after the window');
  assert.not.ok(verifyWebhook(SECRET, headers, body, { now: now - 301 }), 'from the future');
  assert.ok(verifyWebhook(SECRET, headers, body, { now: now + 3000, toleranceSeconds: 3600 }), 'a window of the caller\'s choosing');
  const replayed = { [TIMESTAMP_HEADER]: String(now + 1000), [SIGNATURE_HEADER]: headers[SIGNATURE_HEADER]! };
  assert.not.ok(verifyWebhook(SECRET, replayed, body, { now: now + 1000 }), 'an old signature under a fresh timestamp');
});

// Before 0006 the engine queued the whole summary ({"event", "broadcast": {…}, "variants"}) and
// recorded no webhook_job_id; such a job still queued at the upgrade must be sent, not failed.
test('a webhook job queued by the code before migration 0006 is still sent after the upgrade', async () => {
  const db = await createTestDatabase({ migrated: false });
  const before = await mkdtemp(path.join(os.tmpdir(), 'bq-migrations-'));
  const hook = await receiver(() => ({ status: 200 }));
  try {
    for (const m of (await listMigrations()).filter((m) => m.version < 6)) await writeFile(path.join(before, path.basename(m.file)), await readFile(m.file));
    await migrate(db.pool, silentLogger(), { dir: before });
    const { rows: [b] } = await db.pool.query(`INSERT INTO broadcasts (title, message, status, total, sent, finished_at)
                                               VALUES ('old', '{"text": "hi"}', 'completed', 3, 3, now()) RETURNING broadcast_id`);
    const id = Number(b.broadcast_id);
    const { rows: [j] } = await db.pool.query(
      `INSERT INTO broadcast_queue_jobs (queue, job_type, payload, max_attempts, job_key)
       SELECT 'broadcasts', 'webhook', jsonb_build_object('event', 'broadcast.finished', 'broadcast', to_jsonb(b), 'variants', NULL::jsonb), 8, 'webhook:broadcast:' || b.broadcast_id
         FROM broadcasts b WHERE broadcast_id = $1 RETURNING job_id`, [id]);
    await migrate(db.pool, silentLogger());
    const { rows: [job] } = await db.pool.query(`SELECT job_id, payload, job_key FROM broadcast_queue_jobs WHERE job_id = $1`, [j.job_id]);
    assert.equal(job.payload, { event: 'broadcast.finished', broadcast_id: id });
    const signal = new AbortController().signal;
    await deliverWebhook(db.pool, { url: hook.url, secret: SECRET }, { jobId: Number(job.job_id), payload: job.payload, jobType: 'webhook', jobKey: job.job_key } as any, { signal, stopping: signal, log: silentLogger() } as any);
    const sent = hook.received[0]!;
    assert.ok(verifyWebhook(SECRET, sent.headers, sent.body, { toleranceSeconds: 3600 }));
    const body = JSON.parse(sent.body);
    assert.equal([body.event, body.broadcast.broadcast_id, body.broadcast.status, body.broadcast.sent], ['broadcast.finished', id, 'completed', 3]);
  } finally {
    hook.close();
    await rm(before, { recursive: true, force: true });
    await db.drop();
  }
});

test('an A/B broadcast\'s webhook names the metric its test decided on, also when ab_test left it out', async () => {
  const hook = await receiver(() => ({ status: 200 }));
  try {
    const tracking = { publicUrl: 'https://t.example.com', linkSecret: 'webhook-ab-link-secret-0123456789abcd' };
    await withTelegram({ queue: { webhook: { url: hook.url, secret: SECRET }, tracking } }, async ({ db, queue }) => {
      const variants = ['A', 'B'].map((name) => ({ name, weight: 1, message: { text: `Offer ${name}` } }));
      const jobs = watchJobs(queue);
      await insertJob(db, 'broadcast', { variants, chat_ids: range(1, 10), track: true, ab_test: { sample_percent: 50, decide_after: '1s' } });
      await jobs.doneMany(1, (e) => e.job.jobType === 'webhook' && e.outcome.kind === 'completed', 20_000);
      const { broadcast } = JSON.parse(hook.received[0]!.body);
      assert.equal([broadcast.ab_test.metric, broadcast.ab_winner, broadcast.ab_sent_variant, broadcast.sent], ['ctr', null, 'A', 10]);
    });
  } finally {
    hook.close();
  }
});

test.run();
