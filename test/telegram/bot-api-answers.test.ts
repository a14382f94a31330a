// Answers from the Bot API side that must not be taken at face value: a redirect (followed, it
// once counted another host's answer as a sent message) and a description of any length.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createLogger } from '../../src/log.js';
import { FakeBotApi } from '../../src/testing/index.js';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import { insertJob, jobRow, TEST_TOKEN, withTelegram } from '../helpers/telegram.js';
import { waitForEvent } from '../helpers/wait.js';

test('a Bot API redirect is a failure with its reason, never followed and never counted as sent', async () => {
  const elsewhere = new FakeBotApi({ token: TEST_TOKEN });
  const elsewhereRoot = await elsewhere.start();
  try {
    await withTelegram({}, async ({ db, api, queue }) => {
      let sentEvents = 0;
      queue.telegram!.on('delivery', (d: { outcome: string }) => void (d.outcome === 'sent' && sentEvents++));
      for (const status of [307, 301]) {
        api.answerSendsWith({ status, headers: { location: `${elsewhereRoot}bot${TEST_TOKEN}/sendMessage` } });
        const done = waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobType === 'send');
        const jobId = await insertJob(db, 'send', { chat_id: 42, message: { text: 'hi' } });
        const event = await done;
        assert.is(event.job.jobId, jobId);
        assert.not.equal(event.outcome.kind, 'completed');
        const row = await jobRow(db, jobId);
        assert.not.equal(row.status, 'completed');
        assert.match(row.last_error, /redirect \(3xx\) to http:\/\/127\.0\.0\.1:\d+, which is not followed; check TELEGRAM_API_ROOT/);
        assert.not.match(row.last_error, new RegExp(TEST_TOKEN), 'the token is not in the error');
      }
      assert.is(elsewhere.delivered.length, 0, 'nothing reached the other host');
      assert.is(sentEvents, 0, 'nothing counted as sent');
    });
  } finally {
    await elsewhere.stop();
  }
});

test('a send job\'s last_error and its log line are truncated like the ledger\'s (500 characters of description)', async () => {
  const lines: string[] = [];
  const log = createLogger({ level: 'info', destination: { write: (s: string) => void lines.push(s) } as never });
  await withTelegram({ queue: { log } }, async ({ db, api, queue }) => {
    api.answerSendsWith({ status: 400, body: { ok: false, error_code: 400, description: `Bad Request: ${'x'.repeat(100_000)}` } });
    const done = waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobType === 'send');
    const jobId = await insertJob(db, 'send', { chat_id: 42, message: { text: 'hi' } });
    await done;
    const row = await jobRow(db, jobId);
    assert.is(row.status, 'failed');
    assert.ok(row.last_error.length <= 600, `last_error is ${row.last_error.length} characters`);
    assert.match(row.last_error, /Bad Request: x+…/);
    assert.ok(JSON.stringify(row.errors).length < 2_000, 'the error history too');
    const longest = Math.max(...lines.map((l) => l.length));
    assert.ok(longest < 5_000, `the longest log line is ${longest} characters`);
  });
});

test.run();
