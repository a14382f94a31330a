// Retry or cancel every job matching the jobs filter: exactly what the list's filter matches (on
// every page), nothing enqueued after the confirmation, in batches; admin only, with the CSRF token.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createTestDatabase } from '../helpers/db.js';
import { countBulk, newestJobId, runBulk } from '../../src/broadcast/bulk-control.js';
import { startAdminServer } from '../../src/http/admin-server.js';
import { withTelegram } from '../helpers/telegram.js';
import { ADMIN_TOKEN, DashboardClient, insertFinishedJob, READ_TOKEN } from './helpers.js';

async function statuses(pool: { query: (sql: string, p: unknown[]) => Promise<{ rows: { status: string }[] }> }, ids: number[]): Promise<string[]> {
  const { rows } = await pool.query('SELECT status FROM broadcast_queue_jobs WHERE job_id = ANY($1::bigint[]) ORDER BY job_id', [ids]);
  return rows.map((r) => r.status);
}

test('runBulk retries exactly the jobs the search matches, up to the confirmed id, a batch at a time', async () => {
  const db = await createTestDatabase();
  try {
    const matching: number[] = [];
    for (let i = 0; i < 25; i++) matching.push(await insertFinishedJob(db, i % 5 ? 'failed' : 'cancelled', { order: `needle-${i}` }, 'card declined'));
    const otherText = [await insertFinishedJob(db, 'failed', { order: 'hay' }, 'timeout')];
    const completed = [await insertFinishedJob(db, 'completed', { order: 'needle-done' })];
    const otherType = [await insertFinishedJob(db, 'failed', { order: 'needle-x' }, 'boom', 'other-type')];
    const target = { action: 'retry' as const, search: { text: 'NEEDLE', jobType: 'dashboard-test', before: 3 }, upTo: await newestJobId(db.pool) };
    const late = [await insertFinishedJob(db, 'failed', { order: 'needle-late' }, 'card declined')];
    assert.is(await countBulk(db.pool, target), 25, 'the count ignores `before`: every page is meant');
    const r = await runBulk(db.pool, target, 10);
    assert.equal({ done: r.done, refused: r.refused, batches: r.batches }, { done: 25, refused: 0, batches: 3 });
    assert.ok((await statuses(db.pool, matching)).every((s) => s === 'pending'));
    assert.equal(await statuses(db.pool, [...otherText, ...otherType, ...late]), ['failed', 'failed', 'failed']);
    assert.equal(await statuses(db.pool, completed), ['completed']);
    assert.is(await countBulk(db.pool, target), 0);
  } finally {
    await db.drop();
  }
});

test('bulk cancel cancels the matching pending jobs and says how many; the others stay', async () => {
  const db = await createTestDatabase();
  try {
    const pending: number[] = [];
    for (let i = 0; i < 7; i++) pending.push(await insertFinishedJob(db, 'pending', { i }));
    // A broadcast job goes through cancelJobs (its broadcast would be cancelled with it); the rest in one statement a batch.
    pending.push(await insertFinishedJob(db, 'pending', { note: 'no broadcast row yet' }, null, 'broadcast'));
    const failed = await insertFinishedJob(db, 'failed', { i: 99 }, 'boom');
    const target = { action: 'cancel' as const, search: {}, upTo: await newestJobId(db.pool) };
    assert.is(await countBulk(db.pool, target), 8);
    const r = await runBulk(db.pool, target, 3);
    assert.equal({ done: r.done, refused: r.refused, batches: r.batches }, { done: 8, refused: 0, batches: 3 });
    assert.ok((await statuses(db.pool, pending)).every((s) => s === 'cancelled'));
    assert.equal(await statuses(db.pool, [failed]), ['failed']);
  } finally {
    await db.drop();
  }
});

test('over HTTP: the confirmation states the count; a POST needs the CSRF token and the admin token', async () => {
  await withTelegram({}, async (world) => {
    const ids: number[] = [];
    for (let i = 0; i < 4; i++) ids.push(await insertFinishedJob(world.db, 'failed', { order: `needle-${i}` }, 'boom'));
    const other = await insertFinishedJob(world.db, 'failed', { order: 'hay' }, 'boom');
    const server = await startAdminServer(world.queue, { host: '127.0.0.1', port: 0, apiToken: ADMIN_TOKEN, dashboard: { readOnlyToken: READ_TOKEN } });
    try {
      const c = new DashboardClient(server.url);
      await c.login(ADMIN_TOKEN);
      assert.match((await c.get('/jobs?state=failed&q=needle')).text, '/jobs/bulk?state=failed&amp;q=needle&amp;action=retry');
      const confirm = await c.get('/jobs/bulk?state=failed&q=needle&action=retry');
      assert.is(confirm.status, 200);
      assert.match(confirm.text, '<strong>4 jobs</strong> will be retried');
      const upTo = /name="up_to" value="(\d+)"/.exec(confirm.text)![1]!;
      const form = { bulk_action: 'retry', state: 'failed', q: 'needle', up_to: upTo };
      assert.is((await c.request('POST', '/jobs/bulk', { form })).status, 403);
      const reader = new DashboardClient(server.url);
      await reader.login(READ_TOKEN);
      assert.is((await reader.request('POST', '/jobs/bulk', { form: { ...form, _csrf: await reader.csrf() } })).status, 403);
      assert.ok((await statuses(world.db.pool, ids)).every((s) => s === 'failed'));
      const done = await c.request('POST', '/jobs/bulk', { form: { ...form, _csrf: await c.csrf() } });
      assert.is(done.status, 303);
      assert.is(done.headers.get('location'), '/jobs?state=failed&q=needle');
      assert.ok((await statuses(world.db.pool, ids)).every((s) => s === 'pending'));
      assert.equal(await statuses(world.db.pool, [other]), ['failed']);
      assert.match((await c.get('/jobs?state=failed&q=needle')).text, 'Retried 4 jobs matching the filter.');
      assert.is((await c.get('/jobs/bulk?action=delete')).status, 400);
    } finally {
      await server.close();
    }
  });
});

test.run();
