// The dashboard's heavy reads on the daemon's pool: a broadcast's engagement report is kept, not
// read from the whole ledger on every view of its page, and no more than two heavy reads (report,
// compose count, bulk count) run at once per dashboard — a third is refused with 503.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createTestDatabase } from '../helpers/db.js';
import { until } from '../helpers/wait.js';
import { withTelegram } from '../helpers/telegram.js';
import { BroadcastQueue } from '../../src/broadcast-queue.js';
import { createBroadcast } from '../../src/broadcast/broadcasts-store.js';
import { startAdminServer } from '../../src/http/admin-server.js';
import { StatementCounter } from '../../src/testing/statement-counter.js';
import { ADMIN_TOKEN, DashboardClient, insertFinishedJob } from './helpers.js';

test('a tracked broadcast\'s page shows "counting…" at once, then the kept report; the ledger is read once, not on every view', async () => {
  const db = await createTestDatabase();
  const counter = await StatementCounter.start(db.url);
  const queue = new BroadcastQueue({ connectionString: counter.connectionString(db.url), handlers: { noop: () => null } });
  let server: Awaited<ReturnType<typeof startAdminServer>> | undefined;
  try {
    await queue.start();
    const { broadcast_id: id } = await createBroadcast(db.pool, {
      title: 'Tracked', message: { text: 'hello' }, variants: undefined, audience: { chat_ids: [1, 2, 3] }, frequencyCap: null, allowPaidBroadcast: false, track: true, send: null,
    });
    server = await startAdminServer(queue, { host: '127.0.0.1', port: 0, apiToken: ADMIN_TOKEN });
    const c = new DashboardClient(server.url);
    await c.login(ADMIN_TOKEN);
    counter.reset();
    const first = await c.get(`/broadcasts/${id}`);
    assert.is(first.status, 200);
    assert.match(first.text, 'counting…');
    assert.match(first.text, 'data-report-counting');
    const shown = await until(async () => {
      const page = await c.get(`/broadcasts/${id}`);
      return page.text.includes('Engagement as counted') ? page : null;
    }, 10_000, 'the kept report');
    assert.match(shown.text, 'class="grid engagement"');
    for (let i = 0; i < 3; i++) assert.match((await c.get(`/broadcasts/${id}`)).text, 'Engagement as counted');
    const ledgerReads = counter.statements.filter((s) => s.text.includes('FROM broadcast_deliveries WHERE broadcast_id = $1 GROUP BY variant'));
    assert.is(ledgerReads.length, 1, 'the report read the ledger once for every view within the keep time');
  } finally {
    await server?.close();
    await queue.stop();
    await counter.close();
    await db.drop();
  }
});

test('a third heavy read while two run is refused with 503 and a reason; the two finish once unblocked', async () => {
  await withTelegram({}, async (world) => {
    await insertFinishedJob(world.db, 'failed', { order: 'x' }, 'boom');
    const server = await startAdminServer(world.queue, { host: '127.0.0.1', port: 0, apiToken: ADMIN_TOKEN });
    const blocker = await world.db.pool.connect();
    try {
      const c = new DashboardClient(server.url);
      await c.login(ADMIN_TOKEN);
      // The bulk confirmation's count waits behind this lock, holding its place among the heavy reads.
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE broadcast_queue_jobs IN ACCESS EXCLUSIVE MODE');
      const blocked = async () => Number((await world.db.pool.query(
        `SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%max(job_id)%'`)).rows[0].n);
      const two = [c.get('/jobs/bulk?state=failed&action=retry'), c.get('/jobs/bulk?state=failed&action=retry')];
      await until(async () => (await blocked()) >= 2, 10_000, 'two bulk counts waiting on the lock');
      let answered = false;
      const third = c.get('/jobs/bulk?state=failed&action=retry').finally(() => { answered = true; });
      // Before the limit, the third would wait on the lock like the others: wait for either.
      await until(async () => answered || (await blocked()) >= 3, 10_000, 'the third answered or waiting');
      await blocker.query('COMMIT');
      const refused = await third;
      assert.is(refused.status, 503);
      assert.match(refused.text, 'already running 2 long reads');
      assert.is(refused.headers.get('retry-after'), '5');
      for (const answer of await Promise.all(two)) assert.is(answer.status, 200);
      assert.is((await c.get('/jobs/bulk?state=failed&action=retry')).status, 200, 'the places are free again');
    } finally {
      await blocker.query('ROLLBACK').catch(() => undefined);
      blocker.release();
      await server.close();
    }
  });
});

test.run();
