import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, signWebhook } from '../../src/broadcast/webhook.js';
import { insertJob, range, withTelegram } from '../helpers/telegram.js';
import { waitForEvent } from '../helpers/wait.js';

const SECRET = 'webhook-secret-for-tests';

test('a finished broadcast POSTs a signed summary, retried through the queue until the receiver accepts it', async () => {
  const received: { headers: http.IncomingHttpHeaders; body: string }[] = [];
  let answers = [503, 200];
  const receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      res.statusCode = answers.shift() ?? 200;
      res.end();
      receiver.emit('received');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
  try {
    await withTelegram({ queue: { webhook: { url, secret: SECRET }, retryBaseMs: 100 } }, async ({ db, queue }) => {
      await insertJob(db, 'broadcast', { title: 'promo', message: { text: 'hi' }, chat_ids: range(1, 5) });
      await waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobType === 'webhook' && e.outcome.kind === 'completed', 15_000);
      assert.is(received.length, 2, 'the 503 was retried once');
      const last = received[1]!;
      const payload = JSON.parse(last.body);
      assert.is(payload.event, 'broadcast.finished');
      assert.equal([payload.broadcast.status, payload.broadcast.total, payload.broadcast.sent, payload.broadcast.title], ['completed', 5, 5, 'promo']);
      const timestamp = Number(last.headers[TIMESTAMP_HEADER]);
      assert.is(last.headers[SIGNATURE_HEADER], signWebhook(SECRET, timestamp, last.body));
    });
  } finally {
    receiver.close();
  }
});

test.run();
