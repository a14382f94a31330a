import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
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

test.run();
