import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfig } from '../src/config.js';
import { ConfigError } from '../src/errors.js';
import { scrubSecrets, errorMessage } from '../src/log.js';
import { startChild } from './helpers/child.js';

test('defaults match DESIGN.md', () => {
  const config = loadConfig({});
  assert.equal(
    { queues: config.queues, concurrency: config.concurrency, maxAttempts: config.maxAttempts, rateLimit: config.rateLimit, httpHost: config.httpHost, httpPort: config.httpPort, cleanupDays: config.cleanupDays, logLevel: config.logLevel, sweepMs: config.sweepMs, apiRoot: config.telegramApiRoot, delivery: config.delivery },
    { queues: ['broadcasts'], concurrency: 2, maxAttempts: 3, rateLimit: 30, httpHost: '127.0.0.1', httpPort: 3000, cleanupDays: 7, logLevel: 'info', sweepMs: 30_000, apiRoot: 'https://api.telegram.org/', delivery: 'at-most-once' },
  );
});

test('every bad value is reported at once, and secrets are not echoed', () => {
  try {
    loadConfig({ BQ_CONCURRENCY: 'many', BQ_RATE_LIMIT: '0', DATABASE_URL: 'postgres://u:hunter2@', BQ_QUEUES: 'ok,bad queue', TELEGRAM_BOT_TOKEN: 'nope', LOG_LEVEL: 'loud' });
    assert.unreachable('accepted bad configuration');
  } catch (error) {
    assert.instance(error, ConfigError);
    const problems = (error as ConfigError).problems.join('\n');
    for (const name of ['BQ_CONCURRENCY', 'BQ_RATE_LIMIT', 'DATABASE_URL', 'BQ_QUEUES', 'TELEGRAM_BOT_TOKEN', 'LOG_LEVEL']) assert.match(problems, name);
    assert.not.match(problems, 'hunter2');
  }
});

test('flags win over the environment, and settings are checked against each other', () => {
  assert.is(loadConfig({ BQ_CONCURRENCY: '3' }, { concurrency: '9' }).concurrency, 9);
  assert.is(loadConfig({ TELEGRAM_API_ROOT: 'http://127.0.0.1:9/prefix' }).telegramApiRoot, 'http://127.0.0.1:9/prefix/');
  assert.throws(() => loadConfig({ BQ_SWEEP_SECONDS: '10', BQ_RESCUE_AFTER_SECONDS: '15' }), /at least three times/);
  assert.throws(() => loadConfig({ BQ_HTTP_HOST: '0.0.0.0' }), /BQ_API_TOKEN must be set/);
  assert.is(loadConfig({ BQ_HTTP_HOST: '0.0.0.0', BQ_API_TOKEN: 'a-long-enough-token' }).httpHost, '0.0.0.0');
  // Webhooks were once signed with the admin token by default, which handed every receiver the admin API.
  assert.throws(() => loadConfig({ BQ_WEBHOOK_URL: 'https://example.com/hook', BQ_API_TOKEN: 'a-long-enough-token' }), /BQ_WEBHOOK_SECRET must be set/);
  assert.is(loadConfig({ BQ_WEBHOOK_URL: 'https://example.com/hook', BQ_WEBHOOK_SECRET: 'its-own-key' }).webhookSecret, 'its-own-key');
});

test('bot tokens and passwords are scrubbed from anything logged', () => {
  const token = '123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw';
  assert.not.match(scrubSecrets(`request to https://api.telegram.org/bot${token}/sendMessage failed`), token);
  assert.not.match(errorMessage(new Error('connect postgres://bq:s3cret@db:5432/x failed')), 's3cret');
});

test('the daemon exits 78 naming every bad setting', async () => {
  const child = startChild('daemon', { BQ_CONCURRENCY: 'zero', BQ_CLEANUP_DAYS: '-1' });
  const { code } = await child.exited;
  assert.is(code, 78);
  assert.match(child.stderr(), 'BQ_CONCURRENCY');
  assert.match(child.stderr(), 'BQ_CLEANUP_DAYS');
});

test.run();
