import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { range, withTelegram } from '../helpers/telegram.js';
import { createTestDatabase } from '../helpers/db.js';
import { json, runBqctl } from './run-bqctl.js';

test('watch follows a broadcast a running daemon completes, printing plain lines off a TTY, and exits 0', async () => {
  await withTelegram({ queue: { rateLimit: 200 } }, async ({ db, api }) => {
    const env = { DATABASE_URL: db.url };
    api.setChatState(3, 'blocked');
    const created = await runBqctl(['broadcast', 'create', '--title', 'watched', '--text', 'Hello', '--chats', range(1, 40).join(','), '--send', '--json'], env);
    assert.is(created.code, 0, created.stderr);
    const { broadcastId } = json(created);
    const watched = await runBqctl(['watch', String(broadcastId), '--timeout', '100'], env);
    assert.is(watched.code, 0, watched.stdout + watched.stderr);
    assert.not.match(watched.stdout, /\r/, 'no redrawing when stdout is not a terminal');
    assert.match(watched.stdout, new RegExp(`broadcast ${broadcastId} completed: 40 recipients — sent 39, blocked 1, failed 0, skipped 0, unknown 0`));
    assert.is(api.delivered.length, 39);

    const again = json(await runBqctl(['watch', String(broadcastId), '--json'], env));
    assert.equal([again.status, again.total, again.sent, again.blocked], ['completed', 40, 39, 1]);
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
    assert.is(json(timedOut).timedOut, true);
    assert.match(timedOut.stderr, /timed out after 1s; broadcast \d+ is still draft/);
    const missing = await runBqctl(['watch', '999999'], env);
    assert.is(missing.code, 1);
    assert.match(missing.stderr, /broadcast 999999 does not exist/);
    assert.is((await runBqctl(['watch', '1', '--timeout', 'soon'], env)).code, 2);
  } finally {
    await db.drop();
  }
});

test.run();
