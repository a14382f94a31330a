// Secrets need not be flags (visible to every user in ps): bqctl and the daemon read them from
// <VARIABLE>_FILE and from systemd credentials, and the flags' --help says so.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createTestDatabase } from '../helpers/db.js';
import { json, bqctlInProcess, runBqctl } from './run-bqctl.js';

test('bqctl reads DATABASE_URL from a systemd credential and from DATABASE_URL_FILE', async () => {
  const db = await createTestDatabase();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bqctl-secrets-'));
  try {
    await writeFile(path.join(dir, 'DATABASE_URL'), `${db.url}\n`, { mode: 0o600 });
    const viaCredential = await runBqctl(['status', '--json'], { CREDENTIALS_DIRECTORY: dir });
    assert.is(viaCredential.code, 0, viaCredential.stderr);
    assert.ok(json(viaCredential));
    const file = path.join(dir, 'db-url');
    await writeFile(file, db.url, { mode: 0o600 });
    const viaFile = await runBqctl(['status', '--json'], { DATABASE_URL_FILE: file });
    assert.is(viaFile.code, 0, viaFile.stderr);
    const missing = await runBqctl(['status'], { DATABASE_URL_FILE: path.join(dir, 'nope') });
    assert.is(missing.code, 78);
    assert.match(missing.stderr, /DATABASE_URL_FILE: cannot read .*nope: no such file/);
  } finally {
    await db.drop();
    await rm(dir, { recursive: true, force: true });
  }
});

test('a secret flag says in --help why the environment or a file is better, and warns when used', async () => {
  const help = await bqctlInProcess(['doctor', '--help']);
  const flat = help.stdout.replace(/\s+/g, ' ');
  assert.match(flat, /--api-token <value> .*Prefer BQ_API_TOKEN, BQ_API_TOKEN_FILE or the systemd credential BQ_API_TOKEN: a flag is visible to every user of the machine in ps/);
  assert.match(flat, /--telegram-bot-token <value> .*TELEGRAM_BOT_TOKEN_FILE/);
  const used = await runBqctl(['doctor', '--api-token', 'x', '--http-port', '-1']);
  assert.is(used.code, 78);
  assert.match(used.stderr, /warning: --api-token is visible to every user of this machine in ps; use BQ_API_TOKEN, BQ_API_TOKEN_FILE/);
});

test.run();
