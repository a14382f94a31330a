// bqctl's output through a pipe: all of it arrives, and a reader that goes away early (| head)
// ends bqctl quietly. process.exit() right after a large write used to cut a pipe off at 64 KiB.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

const BIN = fileURLToPath(new URL('../../../bin/bqctl', import.meta.url));
const JOBS = 10_000;

async function withJobs(body: (db: TestDatabase) => Promise<void>): Promise<void> {
  const db = await createTestDatabase();
  try {
    // Future run_at: nothing runs them, and no daemon is involved.
    await db.pool.query(
      `INSERT INTO broadcast_queue_jobs (job_type, payload, run_at)
       SELECT 'send', jsonb_build_object('chat_id', g, 'message', jsonb_build_object('text', repeat('x', 200) || g)), now() + interval '1 day'
         FROM generate_series(1, $1) AS g`,
      [JOBS],
    );
    await body(db);
  } finally {
    await db.drop();
  }
}

function spawnBqctl(args: string[], env: Record<string, string>) {
  return spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

test('bqctl list --json writes several MB whole into a pipe read slowly, and exits 0', async () => {
  await withJobs(async (db) => {
    const child = spawnBqctl(['list', '--json', '--limit', String(JOBS)], { DATABASE_URL: db.url });
    const chunks: Buffer[] = [];
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    // A slow reader: each chunk is taken only on a later turn of the event loop, so the pipe fills.
    child.stdout.on('data', (c: Buffer) => {
      chunks.push(c);
      child.stdout.pause();
      setImmediate(() => child.stdout.resume());
    });
    const [code] = await Promise.all([once(child, 'exit').then(([c]) => c), once(child.stdout, 'end')]);
    const text = Buffer.concat(chunks).toString('utf8');
    assert.is(code, 0, stderr);
    assert.ok(text.length > 2_000_000, `only ${text.length} bytes arrived`);
    const parsed = JSON.parse(text) as { jobs: unknown[] };
    assert.is(parsed.jobs.length, JOBS);
  });
});

test('bqctl list --json into a pipe closed early (| head) ends quietly with exit 1, no stack trace', async () => {
  await withJobs(async (db) => {
    const child = spawnBqctl(['list', '--json', '--limit', String(JOBS)], { DATABASE_URL: db.url });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = once(child, 'exit');
    await once(child.stdout, 'data');
    child.stdout.destroy();
    const [code, signal] = await exited;
    assert.is(signal, null);
    assert.is(code, 1);
    assert.is(stderr, '');
  });
});

test.run();
