import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { range, withTelegram } from '../helpers/telegram.js';
import { watchJobs } from '../helpers/wait.js';
import { createTestDatabase } from '../helpers/db.js';
import { json, bqctlInProcess, runBqctl } from './run-bqctl.js';

test('watch follows a broadcast while it runs, printing plain lines off a TTY, and exits 0 when it completes', async () => {
  await withTelegram({ queue: { rateLimit: 20 } }, async ({ db, api, queue }) => {
    const env = { DATABASE_URL: db.url };
    api.setChatState(3, 'blocked');
    const jobs = watchJobs(queue);
    const created = await runBqctl(['broadcast', 'create', '--title', 'watched', '--text', 'Hello', '--chats', range(1, 60).join(','), '--send', '--json'], env);
    assert.is(created.code, 0, created.stderr);
    const { broadcast_id: broadcastId, job_id: jobId } = json(created);
    // Hold it half-way (paused), so that watch starts on a broadcast that is not finished.
    await api.waitFor('delivered');
    await db.pool.query(`UPDATE broadcasts SET status = 'paused' WHERE broadcast_id = $1`, [broadcastId]);
    await jobs.done(jobId, (e) => e.outcome.kind === 'snooze');
    const pausedAt = api.delivered.length;
    assert.ok(pausedAt < 60, 'the broadcast finished before it could be paused');

    let sawProgress!: () => void;
    const progress = new Promise<void>((resolve) => (sawProgress = resolve));
    const watching = runBqctl(['watch', String(broadcastId), '--timeout', '100'], env, undefined, (soFar) => /\[paused\]/.test(soFar) && sawProgress());
    await Promise.race([progress, watching.then((r) => Promise.reject(new Error(`watch exited ${r.code} before it showed the paused broadcast:\n${r.stdout}${r.stderr}`)))]);
    await db.pool.query(`UPDATE broadcasts SET status = 'sending' WHERE broadcast_id = $1`, [broadcastId]);
    const watched = await watching;
    assert.is(watched.code, 0, watched.stdout + watched.stderr);
    assert.not.match(watched.stdout, /\r/, 'no redrawing when stdout is not a terminal');
    const lines = watched.stdout.trim().split('\n');
    assert.match(lines[0]!, new RegExp(`/60 sent ${pausedAt} .*\\[paused\\]$`), 'the first line is the broadcast as it was while paused');
    assert.match(lines[lines.length - 1]!, new RegExp(`^broadcast ${broadcastId} completed: 60 recipients — sent 59, blocked 1, failed 0, skipped 0, unknown 0`));
    assert.is(api.delivered.length, 59);

    const again = json(await runBqctl(['watch', String(broadcastId), '--json'], env));
    assert.equal([again.status, again.total, again.sent, again.blocked], ['completed', 60, 59, 1]);
  });
});

test('watch exits 1 for a cancelled broadcast, on --timeout, and for one that does not exist', async () => {
  const db = await createTestDatabase();
  try {
    const env = { DATABASE_URL: db.url };
    const { rows } = await db.pool.query(`INSERT INTO broadcasts (title, message, status, total, sent, skipped) VALUES ('c', '{"text":"x"}', 'cancelled', 3, 1, 2), ('d', '{"text":"x"}', 'draft', 0, 0, 0) RETURNING broadcast_id`);
    const cancelled = await runBqctl(['watch', String(rows[0].broadcast_id)], env);
    assert.is(cancelled.code, 1);
    assert.match(cancelled.stdout, /cancelled: 3 recipients — sent 1, blocked 0, failed 0, skipped 2/);
    const timedOut = await runBqctl(['watch', String(rows[1].broadcast_id), '--timeout', '1', '--json'], env);
    assert.is(timedOut.code, 1);
    assert.is(json(timedOut).timed_out, true);
    assert.match(timedOut.stderr, /timed out after 1s; broadcast \d+ is still draft/);
    const missing = await runBqctl(['watch', '999999'], env);
    assert.is(missing.code, 1);
    assert.match(missing.stderr, /broadcast 999999 does not exist/);
    assert.is((await bqctlInProcess(['watch', '1', '--timeout', 'soon'], env)).code, 2);
  } finally {
    await db.drop();
  }
});

test.run();
