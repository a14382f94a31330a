import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createTestDatabase } from '../helpers/db.js';
import { TEST_TOKEN } from '../helpers/telegram.js';
import { FakeBotApi } from '../../src/testing/index.js';
import { json, runBqctl } from './run-bqctl.js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startAdminServer } from '../../src/http/admin-server.js';
import { withTelegram } from '../helpers/telegram.js';

test('doctor passes against a migrated database and a working bot token; the HTTP check only warns', async () => {
  const db = await createTestDatabase();
  const api = new FakeBotApi({ token: TEST_TOKEN });
  const apiRoot = await api.start();
  try {
    const env = { DATABASE_URL: db.url, TELEGRAM_BOT_TOKEN: TEST_TOKEN, TELEGRAM_API_ROOT: apiRoot };
    const result = await runBqctl(['doctor', '--json'], env);
    assert.is(result.code, 0, result.stdout + result.stderr);
    const report = json(result);
    assert.is(report.ok, true);
    const byName = Object.fromEntries(report.checks.map((c: any) => [c.name, c]));
    for (const name of ['database reachable', 'migrations current', 'NOTIFY trigger on broadcast_queue_jobs', 'NOTIFY round trip on broadcast_queue', 'bot token', 'sending not halted or paused']) {
      assert.is(byName[name]?.status, 'ok', `${name}: ${JSON.stringify(byName[name])}`);
    }
    assert.ok(['ok', 'warn'].includes(byName['admin HTTP API'].status));
    assert.not.match(result.stdout + result.stderr, /TEST-token/, 'the token is never printed');

    const human = await runBqctl(['doctor'], { ...env, BQ_HTTP_PORT: '-1' });
    assert.is(human.code, 0, human.stdout + human.stderr);
    assert.match(human.stdout, /✓ NOTIFY round trip on broadcast_queue: delivered in \d+ ms/);
    assert.match(human.stdout, /- admin HTTP API: BQ_HTTP_PORT=-1/);
  } finally {
    await api.stop();
    await db.drop();
  }
});

test('doctor fails (exit 1) with a fix for a rejected token, a missing trigger and pending migrations', async () => {
  const db = await createTestDatabase();
  const api = new FakeBotApi({ token: TEST_TOKEN });
  const apiRoot = await api.start();
  try {
    const wrongToken = '123456:WRONG-token-abcdefghijklmnopqrstu';
    await db.pool.query('DROP TRIGGER _900_notify_inserted ON broadcast_queue_jobs');
    const result = await runBqctl(['doctor'], { DATABASE_URL: db.url, TELEGRAM_BOT_TOKEN: wrongToken, TELEGRAM_API_ROOT: apiRoot, BQ_HTTP_PORT: '-1' });
    assert.is(result.code, 1);
    assert.match(result.stdout, /✗ NOTIFY trigger on broadcast_queue_jobs: missing: _900_notify_inserted/);
    assert.match(result.stdout, /✗ bot token: .*401.*\n\s+fix: the token was revoked or mistyped/);
    assert.not.match(result.stdout + result.stderr, /WRONG-token/);

    const noToken = json(await runBqctl(['doctor', '--json'], { DATABASE_URL: db.url, BQ_HTTP_PORT: '-1' }));
    assert.is(noToken.checks.find((c: any) => c.name === 'bot token').status, 'skip');

    const empty = await createTestDatabase({ migrated: false });
    try {
      const pending = json(await runBqctl(['doctor', '--json'], { DATABASE_URL: empty.url, BQ_HTTP_PORT: '-1' }));
      assert.is(pending.ok, false);
      assert.is(pending.checks.find((c: any) => c.name === 'migrations current').status, 'fail');
      assert.match(pending.checks.find((c: any) => c.name === 'migrations current').hint, /bqctl migrate/);
    } finally {
      await empty.drop();
    }

    const down = json(await runBqctl(['doctor', '--json'], { DATABASE_URL: 'postgres://127.0.0.1:1/none', BQ_HTTP_PORT: '-1' }));
    assert.equal(down.checks.slice(0, 4).map((c: any) => c.status), ['fail', 'skip', 'skip', 'skip']);
  } finally {
    await api.stop();
    await db.drop();
  }
});

test('doctor probes an authenticated admin route: a wrong BQ_API_TOKEN is ✗, the right one (read from BQ_API_TOKEN_FILE) is ✓', async () => {
  await withTelegram({}, async (world) => {
    const token = 'doctor-admin-token-0123456789abcdef';
    const admin = await startAdminServer(world.queue, { host: '127.0.0.1', port: 0, apiToken: token });
    const dir = await mkdtemp(path.join(os.tmpdir(), 'bqctl-doctor-'));
    try {
      const port = String(new URL(admin.url).port);
      const env = { DATABASE_URL: world.db.url, BQ_HTTP_PORT: port };
      const wrong = await runBqctl(['doctor'], { ...env, BQ_API_TOKEN: 'not-the-daemons-token-at-all' });
      assert.is(wrong.code, 1, wrong.stdout + wrong.stderr);
      assert.match(wrong.stdout, /✗ admin HTTP API: .*\/status answered 401: the daemon refuses this BQ_API_TOKEN/);
      assert.not.match(wrong.stdout + wrong.stderr, /not-the-daemons-token/);

      const file = path.join(dir, 'api-token');
      await writeFile(file, `${token}\n`);
      const right = json(await runBqctl(['doctor', '--json'], { ...env, BQ_API_TOKEN_FILE: file }));
      const http = right.checks.find((c: any) => c.name === 'admin HTTP API');
      assert.is(http.status, 'ok', JSON.stringify(http));
      assert.match(http.detail, /the token is accepted/);
    } finally {
      await admin.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

test.run();
