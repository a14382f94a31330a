import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createBroadcastQueue, PayloadError, loadConfig, type BroadcastQueueOptions } from '../src/index.js';
import { ConfigError } from '../src/errors.js';
import { startChild } from './helpers/child.js';
import { createTestDatabase } from './helpers/db.js';
import { FakeBotApi } from '../src/testing/index.js';
import { TEST_TOKEN, jobRow } from './helpers/telegram.js';
import { watchJobs } from './helpers/wait.js';

test('the library API: queueBroadcast and send enqueue jobs that a started queue delivers', async () => {
  const db = await createTestDatabase();
  const api = new FakeBotApi({ token: TEST_TOKEN });
  const apiRoot = await api.start();
  const queue = createBroadcastQueue({ connectionString: db.url, telegram: { token: TEST_TOKEN, apiRoot }, rateLimit: 500 });
  try {
    await queue.start();
    const jobs = watchJobs(queue);
    const sent = await queue.send(42, { text: 'hello' });
    await jobs.done(sent.jobId);
    assert.is(api.deliveredCount(42), 1);

    const broadcast = await queue.queueBroadcast({ message: { text: 'to all' }, chat_ids: [1, 2, 3] });
    await jobs.done(broadcast.jobId);
    assert.is((await jobRow(db, broadcast.jobId)).result.sent, 3);

    for (const bad of [() => queue.send(42, { txt: 'typo' }), () => queue.queueBroadcast({ message: { text: 'x' } }), () => queue.queueBroadcast(-1)]) {
      const error = await bad().then(() => null, (e: Error) => e);
      assert.instance(error, PayloadError);
    }
  } finally {
    await queue.stop();
    await api.stop();
    await db.drop();
  }
});

/** The problems an impossible setting gets, or [] if it is accepted. */
function refused(make: () => unknown): string[] {
  try {
    make();
    return [];
  } catch (error) {
    assert.instance(error, ConfigError);
    return (error as ConfigError).problems;
  }
}

// [environment variable, its value, library option, its value]: the same impossible setting, told the daemon's way and the library's.
const IMPOSSIBLE: [string, string, string, BroadcastQueueOptions][] = [
  ['BQ_CLEANUP_DAYS', '-1', 'cleanupDays', { cleanupDays: -1 }],
  ['BQ_LEDGER_RETENTION_DAYS', '1.5', 'ledgerRetentionDays', { ledgerRetentionDays: 1.5 }],
  ['BQ_CONCURRENCY', '0', 'concurrency', { concurrency: 0 }],
  ['BQ_MAX_ATTEMPTS', '101', 'maxAttempts', { maxAttempts: 101 }],
  ['BQ_RATE_LIMIT', '0', 'rateLimit', { rateLimit: 0 }],
  ['BQ_DELIVERY', 'twice', 'delivery', { delivery: 'twice' as 'at-most-once' }],
  ['BQ_QUEUES', 'ok,bad queue', 'queues', { queues: ['ok', 'bad queue'] }],
  ['TELEGRAM_BOT_TOKEN', 'hunter2 secret', 'telegram.token', { telegram: { token: 'hunter2 secret' } }],
  ['TELEGRAM_API_ROOT', 'https://api.example.com/?key=hunter2', 'telegram.apiRoot', { telegram: { token: TEST_TOKEN, apiRoot: 'https://api.example.com/?key=hunter2' } }],
  ['BQ_WEBHOOK_URL', 'https://user:hunter2@example.com/hook', 'webhook.url', { webhook: { url: 'https://user:hunter2@example.com/hook', secret: 'k' } }],
];

test('createBroadcastQueue refuses impossible options at creation, naming the option in the daemon\'s words, secrets never echoed', () => {
  for (const [env, raw, option, options] of IMPOSSIBLE) {
    const library = refused(() => createBroadcastQueue(options));
    const daemon = refused(() => loadConfig({ [env]: raw, BQ_WEBHOOK_SECRET: 'k' }));
    assert.is(library.length, 1, `${option}: ${library.join('; ')}`);
    assert.ok(library[0]!.startsWith(`${option} `), library[0]);
    assert.equal(library.map((p) => p.slice(option.length)), daemon.map((p) => p.slice(env.length)), option);
    assert.not.match(library[0]!, 'hunter2');
  }
  // Durations are the same rule, shown in the unit each reader types: milliseconds in the library, seconds for the daemon.
  assert.equal(refused(() => createBroadcastQueue({ sweepMs: 10 })), ['sweepMs must be between 50 and 3600000 ms, got 10']);
  assert.equal(refused(() => loadConfig({ BQ_SWEEP_SECONDS: '0.01' })), ['BQ_SWEEP_SECONDS must be between 0.05 and 3600 seconds, got 0.01']);
  assert.equal(refused(() => createBroadcastQueue({ retryBaseMs: 10_000, retryMaxMs: 1_000 })), ['retryMaxMs (1000) must not be below retryBaseMs (10000)']);
  // Every problem at once, in one error, as at the daemon's start-up.
  assert.is(refused(() => createBroadcastQueue({ concurrency: 1.5, cleanupDays: -1, queues: [] })).length, 3);
});

test('the daemon exits 78 with the very words createBroadcastQueue throws', async () => {
  const [library] = refused(() => createBroadcastQueue({ cleanupDays: -1 }));
  const child = startChild('daemon', { BQ_CLEANUP_DAYS: '-1' });
  const { code } = await child.exited;
  assert.is(code, 78);
  assert.ok(child.stderr().includes(`BQ_CLEANUP_DAYS${library!.slice('cleanupDays'.length)}`), `${child.stderr()} vs ${library}`);
});

test('start(concurrency) is held to the same rule', async () => {
  const error = await createBroadcastQueue({}).start(0).then(() => null, (e: Error) => e);
  assert.instance(error, ConfigError);
  assert.match(error!.message, 'concurrency must be a whole number from 1 to 1000, got 0');
});

test.run();
