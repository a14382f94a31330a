import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfig } from '../src/config/load.js';
import { DEFAULTS } from '../src/config/defaults.js';
import { resolveQueueOptions, settingsFromConfig } from '../src/config/options.js';
import { createBroadcastQueue } from '../src/index.js';
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

test('the daemon and the library run with the same defaults, from one object', () => {
  // The daemon is a library user: its settings from an empty environment, handed to the queue,
  // must come out as the library's own defaults, and both as DEFAULTS says.
  const daemon = createBroadcastQueue(settingsFromConfig(loadConfig({}))).settings;
  const library = createBroadcastQueue({}).settings;
  assert.equal(daemon, library);
  assert.equal(library, resolveQueueOptions({}));
  for (const [key, value] of Object.entries(library)) {
    if (key in DEFAULTS) assert.equal(value, DEFAULTS[key as keyof typeof DEFAULTS], key);
  }
  assert.is(library.cleanupDays, 7);
  assert.is(library.rescueAfterMs, 120_000);
});

test('0 days keeps finished jobs and broadcasts forever in the daemon, as it always did in the library', () => {
  const config = loadConfig({ BQ_CLEANUP_DAYS: '0', BQ_LEDGER_RETENTION_DAYS: '0' });
  assert.equal([config.cleanupDays, config.ledgerRetentionDays], [0, 0]);
  assert.equal([createBroadcastQueue(settingsFromConfig(config)).settings.cleanupDays, createBroadcastQueue({ cleanupDays: 0 }).settings.cleanupDays], [0, 0]);
});

test('a long sweep stretches the default hung window to three sweeps instead of being refused', () => {
  assert.is(loadConfig({ BQ_SWEEP_SECONDS: '3600' }).rescueAfterMs, 3 * 3_600_000);
  assert.is(createBroadcastQueue({ sweepMs: 3_600_000 }).settings.rescueAfterMs, 3 * 3_600_000);
  // Given explicitly, a window shorter than three sweeps is still refused, in both.
  assert.throws(() => loadConfig({ BQ_SWEEP_SECONDS: '3600', BQ_RESCUE_AFTER_SECONDS: '120' }), /at least three times/);
  assert.throws(() => createBroadcastQueue({ sweepMs: 3_600_000, rescueAfterMs: 120_000 }), /rescueAfterMs \(120000\) must be at least three times sweepMs \(3600000\)/);
});

test('the read-only dashboard token is BQ_VIEWER_TOKEN, as DESIGN.md names it; the old name is refused with the new one', () => {
  const viewer = 'a-viewer-token-of-24-chars';
  assert.is(loadConfig({ BQ_VIEWER_TOKEN: viewer }).dashboardReadOnlyToken, viewer);
  const error = (() => { try { loadConfig({ BQ_DASHBOARD_READONLY_TOKEN: viewer }); } catch (e) { return e as Error; } return null; })();
  assert.ok(error, 'the old name is not ignored');
  assert.match(error!.message, 'BQ_DASHBOARD_READONLY_TOKEN is now BQ_VIEWER_TOKEN');
  assert.not.match(error!.message, viewer);
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

test('the daemon exits 78 naming every bad setting, including settings that could never work', async () => {
  const child = startChild('daemon', { BQ_CONCURRENCY: 'zero', BQ_CLEANUP_DAYS: '-1', BQ_API_TOKEN: 'a token with spaces in it', BQ_WEBHOOK_URL: 'https://user:pw@example.com/hook', BQ_WEBHOOK_SECRET: 'k' });
  const { code } = await child.exited;
  assert.is(code, 78);
  for (const name of ['BQ_CONCURRENCY', 'BQ_CLEANUP_DAYS', 'BQ_API_TOKEN', 'BQ_WEBHOOK_URL']) assert.match(child.stderr(), name);
  assert.not.match(child.stderr(), /a token with spaces|pw@/);
});

/** The problems loadConfig reports for these variables, or [] if it accepts them. */
function problems(env: Record<string, string>, read?: (file: string) => string): string[] {
  try {
    loadConfig(env, {}, read);
    return [];
  } catch (error) {
    assert.instance(error, ConfigError);
    return (error as ConfigError).problems;
  }
}

test('settings that can never work are refused at start-up: tokens that cannot travel in a header, URLs fetch refuses, clashing ports', () => {
  const token = (t: string) => problems({ BQ_API_TOKEN: t });
  assert.match(token('has a space inside it ok')[0]!, /^BQ_API_TOKEN must be printable ASCII without spaces/);
  assert.match(token('tökén-with-non-ascii-chars')[0]!, /^BQ_API_TOKEN must be printable ASCII/);
  assert.equal(token('  padded-but-fine-0123456789  '), []);
  assert.match(problems({ BQ_WEBHOOK_URL: 'https://u:p@example.com/hook', BQ_WEBHOOK_SECRET: 'k' })[0]!, /^BQ_WEBHOOK_URL must not hold a user name or password/);
  assert.match(problems({ TELEGRAM_API_ROOT: 'https://api.example.com/?x=1' })[0]!, /^TELEGRAM_API_ROOT must be a plain base URL/);
  assert.match(problems({ BQ_HTTP_HOST: '127.0.0.1:3000' })[0]!, /^BQ_HTTP_HOST must be an IP address or a host name, without a port/);
  assert.equal(problems({ BQ_HTTP_HOST: '::1' }), []);
  assert.equal(problems({ BQ_HTTP_HOST: 'localhost' }), []);
  assert.match(problems({ BQ_LISTEN_DATABASE_URL: 'postgres://db/x' })[0]!, /BQ_LISTEN_DATABASE_URL is set but DATABASE_URL is not/);
  assert.match(problems({ BQ_HTTP_PORT: '5433', BQ_EMBEDDED_PORT: '5433' })[0]!, /cannot share a port/);
});

test('a short admin token beside a read-only dashboard token is refused at start-up, without echoing it', () => {
  const env = { BQ_API_TOKEN: 'short-admin-secret-23chr'.slice(0, 23), BQ_VIEWER_TOKEN: 'read-only-token-0123456789' };
  try {
    loadConfig(env);
    assert.unreachable('a 23-character admin token was accepted beside a read-only token');
  } catch (error) {
    assert.instance(error, ConfigError);
    assert.match((error as Error).message, 'BQ_API_TOKEN must be at least 24 characters when BQ_VIEWER_TOKEN is set');
    assert.not.match((error as Error).message, env.BQ_API_TOKEN);
  }
  // 24 characters do; so does a short one alone, or with the dashboard off.
  assert.is(loadConfig({ ...env, BQ_API_TOKEN: 'x'.repeat(24) }).apiToken, 'x'.repeat(24));
  assert.ok(loadConfig({ BQ_API_TOKEN: env.BQ_API_TOKEN }));
  assert.ok(loadConfig({ ...env, BQ_DASHBOARD: 'false' }));
});

test('secrets come from <VARIABLE>_FILE or a systemd credential; the variable itself still works; problems name the file, never the secret', () => {
  const bot = '123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw';
  const files: Record<string, string> = {
    '/run/secrets/bot': `${bot}\n`,
    '/creds/BQ_API_TOKEN': 'credential-token-0123456789',
    '/creds/DATABASE_URL': 'postgres://bq:s3cret@db/bot',
    '/run/secrets/empty': '\n',
    '/run/secrets/bad': 'not a token\n',
  };
  const read = (file: string) => {
    if (file in files) return files[file]!;
    throw Object.assign(new Error(`ENOENT: ${file}`), { code: 'ENOENT' });
  };
  const config = loadConfig({ TELEGRAM_BOT_TOKEN_FILE: '/run/secrets/bot', CREDENTIALS_DIRECTORY: '/creds', TELEGRAM_BOT_TOKEN: '' }, {}, read);
  assert.is(config.telegramBotToken, bot);
  assert.is(config.apiToken, 'credential-token-0123456789');
  assert.is(config.databaseUrl, 'postgres://bq:s3cret@db/bot');
  // The variable wins over a credential; a credential that is not there is simply not set.
  assert.is(loadConfig({ CREDENTIALS_DIRECTORY: '/creds', BQ_API_TOKEN: 'from-the-environment-0123' }, {}, read).apiToken, 'from-the-environment-0123');
  assert.is(loadConfig({ CREDENTIALS_DIRECTORY: '/creds' }, {}, read).webhookSecret, undefined);
  assert.is(loadConfig({ BQ_API_TOKEN: 'from-the-environment-0123' }, { apiToken: 'from-the-flag-0123456789' }, read).apiToken, 'from-the-flag-0123456789');

  const found = problems({
    TELEGRAM_BOT_TOKEN_FILE: '/run/secrets/bad',
    BQ_API_TOKEN_FILE: '/run/secrets/missing',
    BQ_WEBHOOK_SECRET: 'both', BQ_WEBHOOK_SECRET_FILE: '/run/secrets/bot',
    DATABASE_URL_FILE: '/run/secrets/empty',
  }, read);
  assert.equal(found.length, 4, found.join('\n'));
  assert.ok(found.some((p) => /^TELEGRAM_BOT_TOKEN_FILE \(\/run\/secrets\/bad\) does not look like a bot token/.test(p)), found.join('\n'));
  assert.ok(found.includes('BQ_API_TOKEN_FILE: cannot read /run/secrets/missing: no such file'), found.join('\n'));
  assert.ok(found.includes('BQ_WEBHOOK_SECRET and BQ_WEBHOOK_SECRET_FILE are both set: set one'), found.join('\n'));
  assert.ok(found.includes('DATABASE_URL_FILE: /run/secrets/empty is empty'), found.join('\n'));
  assert.not.match(found.join('\n'), /not a token|AAHdq/);
});

test.run();
