import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmod, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import pg from 'pg';
import { startEmbeddedPostgres } from '../../src/db/embedded.js';
import { silentLogger } from '../../src/log.js';
import os from 'node:os';
import path from 'node:path';
import { startChild } from '../helpers/child.js';
import { until, waitForEvent } from '../helpers/wait.js';

const started = (line: any) => line.msg === 'queue started';

function postmasterPid(dataDir: string): Promise<number | null> {
  return readFile(path.join(dataDir, 'pg', 'postmaster.pid'), 'utf8').then((t) => Number(t.split('\n')[0]), () => null);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('with no DATABASE_URL the daemon runs on an embedded PostgreSQL, recovers after kill -9, and stops it on SIGTERM', async () => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'bq-embedded-'));
  const env = { BQ_DATA_DIR: dataDir, BQ_HTTP_PORT: '-1', LOG_LEVEL: 'info' };
  let child = startChild('daemon', env);
  try {
    const psqlHint = /connect with:\n\s+PGPASSWORD="\$\(cat .*password\)" psql -h 127\.0\.0\.1 -p \d+ -U postgres broadcast_queued/;
    await waitForEvent(child.events, 'stderr', (text: string) => psqlHint.test(text), 60_000);
    const orphan = await postmasterPid(dataDir);
    assert.ok(orphan && alive(orphan));

    // kill -9 leaves the postmaster running; the next start must stop it and start cleanly.
    child.process.kill('SIGKILL');
    await child.exited;
    assert.ok(alive(orphan!), 'the postmaster outlives a SIGKILLed daemon');
    child = startChild('daemon', env);
    const recovered = waitForEvent(child.events, 'line', (l: any) => l.msg === 'stopping a PostgreSQL left running by an earlier process', 60_000);
    await waitForEvent(child.events, 'line', started, 60_000);
    await recovered;

    const postmaster = await postmasterPid(dataDir);
    child.process.kill('SIGTERM');
    const { code } = await child.exited;
    assert.is(code, 0, child.stderr());
    assert.not.ok(postmaster && alive(postmaster), 'SIGTERM leaves no PostgreSQL behind');
  } finally {
    child.process.kill('SIGKILL');
    const left = await postmasterPid(dataDir);
    if (left && alive(left)) {
      process.kill(left, 'SIGINT');
      await until(async () => !alive(left), 30_000, 'the test postmaster to exit');
    }
    await rm(dataDir, { recursive: true, force: true });
  }
});

// Root's own home (0700) or any mktemp -d: the postgres user cannot enter the directory, and
// used to meet 'the postgres user cannot enter …' (the demo) or an object dump of initdb's
// arguments (npm test). Only meaningful as root, where PostgreSQL runs as another user.
test('as root, an embedded PostgreSQL starts in a directory the postgres user cannot enter, with no password file left readable', async () => {
  if (process.getuid?.() !== 0) return;
  const parent = await mkdtemp(path.join(os.tmpdir(), 'bq-private-'));
  await chmod(parent, 0o700);
  const dataDir = path.join(parent, 'data');
  const before = new Set(await readdir(os.tmpdir()));
  let pgData: string | null = null;
  const server = await startEmbeddedPostgres({ dataDir, port: 0, log: silentLogger(), ephemeral: true });
  try {
    pgData = server.dataDir;
    const client = new pg.Client({ connectionString: server.connectionString });
    await client.connect();
    assert.equal((await client.query('SELECT current_user AS u')).rows, [{ u: 'postgres' }]);
    await client.end();
    assert.ok(!pgData.startsWith(parent), `the cluster should live where postgres can reach it, not in ${pgData}`);
    assert.is((await readFile(path.join(dataDir, 'pg-location'), 'utf8')).trim(), pgData);
    const leftovers = [...(await readdir(os.tmpdir())).filter((f) => !before.has(f) && /password/.test(f)), ...(await readdir(path.dirname(pgData))).filter((f) => /password/.test(f))];
    assert.equal(leftovers, [], 'a password file was left behind');
    assert.is(((await stat(path.join(dataDir, 'password'))).mode & 0o077), 0, 'the password file is readable by others');
  } finally {
    await server.stop();
    if (pgData) await rm(path.dirname(pgData), { recursive: true, force: true });
    await rm(parent, { recursive: true, force: true });
  }
});

test('a failed start says why in one line, not an object', async () => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'bq-badstart-'));
  const first = await startEmbeddedPostgres({ dataDir, port: 0, log: silentLogger(), ephemeral: true });
  try {
    // The same cluster twice: the second postmaster refuses the data directory or the port.
    const error = await startEmbeddedPostgres({ dataDir: `${dataDir}-copy`, port: first.port, log: silentLogger(), ephemeral: true }).then(() => null, (e: unknown) => e);
    assert.ok(error instanceof Error, `rejected with ${String(error)}`);
    assert.match((error as Error).message, /embedded PostgreSQL did not start .*port/);
    assert.not.match((error as Error).message, /\[object Object\]|undefined$/);
  } finally {
    await first.stop();
    await rm(dataDir, { recursive: true, force: true });
    await rm(`${dataDir}-copy`, { recursive: true, force: true });
  }
});

// As root the postmaster runs as the postgres user, who can read its /proc/<pid>/environ.
test('the embedded PostgreSQL does not inherit the daemon\'s secrets in its environment', async () => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'bq-envleak-'));
  const token = `123456:fake-token-${process.pid}-never-for-postgres`;
  const saved = process.env.TELEGRAM_BOT_TOKEN;
  process.env.TELEGRAM_BOT_TOKEN = token;
  let server: Awaited<ReturnType<typeof startEmbeddedPostgres>> | null = null;
  try {
    server = await startEmbeddedPostgres({ dataDir, port: 0, log: silentLogger(), ephemeral: true });
    const pid = Number((await readFile(path.join(server.dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
    const environ = await readFile(`/proc/${pid}/environ`, 'utf8');
    assert.ok(environ.includes('PATH='), 'read the postmaster\'s environment');
    assert.not.ok(environ.includes(token), 'the bot token is in the postmaster\'s environment');
    assert.not.ok(environ.includes('TELEGRAM_BOT_TOKEN'), 'TELEGRAM_BOT_TOKEN is in the postmaster\'s environment');
  } finally {
    if (saved === undefined) delete process.env.TELEGRAM_BOT_TOKEN;
    else process.env.TELEGRAM_BOT_TOKEN = saved;
    await server?.stop();
    if (server && !server.dataDir.startsWith(dataDir)) await rm(path.dirname(server.dataDir), { recursive: true, force: true });
    await rm(dataDir, { recursive: true, force: true });
  }
});

test.run();
