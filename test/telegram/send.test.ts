import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { insertJob, jobRow, withTelegram } from '../helpers/telegram.js';
import { waitForEvent, watchJobs } from '../helpers/wait.js';

test('a send job inserted from SQL reaches the Bot API', async () => {
  await withTelegram({}, async ({ db, api, queue }) => {
    const jobs = watchJobs(queue);
    const delivered = api.waitFor('delivered');
    const jobId = await insertJob(db, 'send', { chat_id: 123456, message: { text: 'Your order shipped', disable_notification: true } });
    const record: any = await delivered;
    assert.is(record.chatId, 123456);
    assert.is(record.text, 'Your order shipped');
    assert.is(record.body.disable_notification, true);
    await jobs.done(jobId);
    const row = await jobRow(db, jobId);
    assert.is(row.status, 'completed');
    assert.equal(row.result, { chat_id: 123456, message_id: record.messageId });
  });
});

test('a malformed send payload fails at once with a message that names the field', async () => {
  await withTelegram({}, async ({ db, api, queue }) => {
    const jobs = watchJobs(queue);
    const jobId = await insertJob(db, 'send', { chat_id: 'abc', message: { text: 'hi' } });
    await jobs.done(jobId);
    const row = await jobRow(db, jobId);
    assert.is(row.status, 'failed');
    assert.match(row.last_error, /payload\.chat_id must be an integer/);
    assert.is(row.attempts, 1);
    assert.is(api.calls.filter((c) => c.method !== 'getMe').length, 0);
  });
});

test('a blocked chat fails the send for good and marks the subscriber unreachable', async () => {
  await withTelegram({}, async ({ db, api, queue }) => {
    const jobs = watchJobs(queue);
    api.setChatState(77, 'blocked');
    const jobId = await insertJob(db, 'send', { chat_id: 77, message: { text: 'hi' } });
    await jobs.done(jobId);
    const row = await jobRow(db, jobId);
    assert.is(row.status, 'failed');
    assert.match(row.last_error, /blocked/);
    const sub = await db.pool.query('SELECT unreachable_reason FROM broadcast_subscribers WHERE chat_id = 77');
    assert.equal(sub.rows, [{ unreachable_reason: 'blocked' }]);
  });
});

test('a send to a migrated group goes to the new supergroup id and the subscriber follows it', async () => {
  await withTelegram({}, async ({ db, api, queue }) => {
    const jobs = watchJobs(queue);
    await db.pool.query('INSERT INTO broadcast_subscribers (chat_id, tags) VALUES (-100, $1)', [['groups']]);
    api.migrate(-100, -1001234);
    const jobId = await insertJob(db, 'send', { chat_id: -100, message: { text: 'hello group' } });
    await jobs.done(jobId);
    assert.is((await jobRow(db, jobId)).result.migrated_to, -1001234);
    assert.is(api.deliveredCount(-1001234), 1);
    const sub = await db.pool.query('SELECT chat_id, tags FROM broadcast_subscribers');
    assert.equal(sub.rows, [{ chat_id: -1001234, tags: ['groups'] }]);
  });
});

test('a 5xx is retried with the job backoff; a 429 snoozes without spending an attempt', async () => {
  await withTelegram({ api: { retryAfterSeconds: 1 }, queue: { retryBaseMs: 100 } }, async ({ db, api, queue }) => {
    const jobs = watchJobs(queue);
    api.flaky(5, 1, 502);
    const flaky = await insertJob(db, 'send', { chat_id: 5, message: { text: 'x' } });
    await jobs.done(flaky, (e) => e.outcome.kind === 'completed', 10_000);
    const flakyRow = await jobRow(db, flaky);
    assert.equal([flakyRow.status, flakyRow.attempts], ['completed', 2]);
    assert.match(flakyRow.errors[0].error, /502|Bad Gateway/);

    api.setFaults({ storm: true });
    const stormed = await insertJob(db, 'send', { chat_id: 6, message: { text: 'y' } });
    await jobs.done(stormed);
    api.setFaults({ storm: false });
    await jobs.done(stormed, (e) => e.outcome.kind === 'completed', 10_000);
    const row = await jobRow(db, stormed);
    assert.equal([row.status, row.attempts], ['completed', 1]);
    assert.ok(api.tooManyRequests >= 1);
  });
});

test('a 401 halts sending: the job stays pending and health says why', async () => {
  await withTelegram({}, async ({ db, api, queue }) => {
    const jobs = watchJobs(queue);
    api.setToken('654321:another-token-abcdefghijklmnopqr');
    const halted = waitForEvent(queue, 'halt');
    const jobId = await insertJob(db, 'send', { chat_id: 9, message: { text: 'z' } });
    await halted;
    await jobs.done(jobId);
    const row = await jobRow(db, jobId);
    assert.equal([row.status, row.attempts], ['pending', 0]);
    const status = await queue.getStatus();
    assert.match(status.telegram!.halted!, /401/);
    const state = await db.pool.query('SELECT halted_at IS NOT NULL AS halted FROM broadcast_rate_limits');
    assert.equal(state.rows, [{ halted: true }]);
  });
});

test.run();
