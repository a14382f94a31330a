// The README's psql snippets, run as written against a migrated database and then by a daemon, so
// the README cannot drift from what the schema accepts and does (issue 16's "Done means": a
// three-step workflow, a weekly digest schedule and a local-time broadcast, each from psql).
// The ids a snippet spells out (`{"broadcast_id": 43}`) are made the ones its RETURNING gives by
// setting the sequence first, as a user would copy the returned id.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { BroadcastQueue } from '../src/broadcast-queue.js';
import type { JobEvent, JobHandler } from '../src/queue/worker-pool.js';
import { takeDueTicks } from '../src/schedules/schedules-store.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { withTelegram } from './helpers/telegram.js';
import { waitForEvent } from './helpers/wait.js';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const HOUR_MS = 3_600_000;

/** The first ```sql block after the line that starts with `heading`. */
function sqlAfter(heading: string): string {
  const at = readme.indexOf(`\n${heading}`);
  assert.ok(at >= 0, `README has no "${heading}"`);
  const block = /```sql\n([\s\S]*?)```/.exec(readme.slice(at));
  assert.ok(block, `no sql block after "${heading}"`);
  return block![1]!;
}

/** The next broadcast_id the broadcasts table hands out becomes `id`. */
async function nextBroadcastId(db: TestDatabase, id: number): Promise<void> {
  await db.pool.query(`SELECT setval(pg_get_serial_sequence('broadcasts', 'broadcast_id'), $1)`, [id - 1]);
}

test('Enqueue from SQL: every statement of the first block runs as written', async () => {
  const db = await createTestDatabase();
  try {
    await nextBroadcastId(db, 42);
    // One simple-protocol query, as psql sends a pasted block: several statements, no parameters.
    await db.pool.query(sqlAfter('## Enqueue from SQL'));
    const { rows } = await db.pool.query(`SELECT job_type, payload FROM broadcast_queue_jobs ORDER BY job_id`);
    assert.equal(rows.map((r) => r.job_type), ['send', 'broadcast', 'broadcast']);
    assert.equal(rows[2].payload, { broadcast_id: 42 });
    const b = await db.pool.query(`SELECT status, audience FROM broadcasts WHERE broadcast_id = 42`);
    assert.equal([b.rows[0].status, b.rows[0].audience], ['paused', { tags_any: ['vip'] }]);
  } finally {
    await db.drop();
  }
});

test('the three-step workflow runs its steps in order, each seeing the one before', async () => {
  const db = await createTestDatabase();
  const order: string[] = [];
  const step = (name: string, result: (seen: unknown[]) => unknown): JobHandler => (job) => {
    order.push(name);
    return result(job.dependencies.map((d) => d.result));
  };
  const queue = new BroadcastQueue({
    connectionString: db.url,
    sweepMs: HOUR_MS,
    handlers: {
      fetch_sales: step('fetch', () => ({ sales: 7 })),
      render_report: step('render', ([fetched]) => ({ report: `sales: ${(fetched as { sales: number }).sales}` })),
      post_report: step('post', ([rendered]) => rendered),
    },
  });
  try {
    const { rows } = await db.pool.query(sqlAfter('### Workflows'));
    const postId = rows[0].job_id;
    const waiting = await db.pool.query(`SELECT job_type, status, depends_on FROM broadcast_queue_jobs ORDER BY job_id`);
    assert.equal(waiting.rows.map((r) => [r.job_type, r.status]), [['fetch_sales', 'pending'], ['render_report', 'waiting'], ['post_report', 'waiting']]);
    const posted = waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobId === postId, 30_000);
    await queue.start();
    assert.is((await posted).outcome.kind, 'completed');
    assert.equal(order, ['fetch', 'render', 'post']);
    const done = await db.pool.query(`SELECT status, result FROM broadcast_queue_jobs WHERE job_id = $1`, [postId]);
    assert.equal([done.rows[0].status, done.rows[0].result], ['completed', { report: 'sales: 7' }]);
  } finally {
    await queue.stop();
    await db.drop();
  }
});

test('the weekly digest schedule ticks on Mondays at 09:00 Berlin time and enqueues its broadcast', async () => {
  const db = await createTestDatabase();
  try {
    await db.pool.query(sqlAfter('### Recurring schedules'));
    // Wednesday 2 December 2026 → Monday 7 December, 09:00 CET; then, taken, Monday 14 December.
    await takeDueTicks(db.pool, new Date('2026-12-02T12:00:00Z'));
    const next = async () => (await db.pool.query(`SELECT next_run_at FROM broadcast_queue_schedules WHERE name = 'weekly-digest'`)).rows[0].next_run_at.toISOString();
    assert.is(await next(), '2026-12-07T08:00:00.000Z');
    await takeDueTicks(db.pool, new Date('2026-12-07T08:00:05Z'));
    assert.is(await next(), '2026-12-14T08:00:00.000Z');
    const { rows } = await db.pool.query(`SELECT job_type, run_at, payload FROM broadcast_queue_jobs`);
    assert.is(rows.length, 1);
    assert.equal([rows[0].job_type, rows[0].run_at.toISOString()], ['broadcast', '2026-12-07T08:00:00.000Z']);
    assert.equal(rows[0].payload.audience, { tags_any: ['digest'] });
  } finally {
    await db.drop();
  }
});

test('the local-time broadcasts are fanned out with each recipient due at 09:00 in their zone, and wait for it', async () => {
  await withTelegram({}, async ({ db, queue }) => {
    await queue.pause();
    await db.pool.query(`INSERT INTO broadcast_subscribers (chat_id, tags) VALUES (123456, '{digest}'), (777, '{digest}')`);
    await nextBroadcastId(db, 43);
    await db.pool.query(sqlAfter('### Delivery at each recipient'));
    const jobs = await db.pool.query(`SELECT job_id FROM broadcast_queue_jobs WHERE job_type = 'broadcast' ORDER BY job_id`);
    assert.is(jobs.rows.length, 2);
    // Each job's first run fans out and, with no row due within 10 s, sleeps (not_due). Within
    // a minute of 09:00 in Tokyo or Berlin, or after 24 December 2026, rows are due and sent.
    const ran = jobs.rows.map((r) => waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobId === r.job_id, 30_000));
    queue.resume();
    for (const event of await Promise.all(ran)) {
      assert.ok(event.outcome.kind === 'completed' || (event.outcome.kind === 'snooze' && event.outcome.reason === 'not_due'), JSON.stringify(event.outcome));
    }
    const { rows } = await db.pool.query(
      `SELECT d.broadcast_id, d.chat_id, d.status, d.next_attempt_at > now() AS ahead,
              to_char(d.next_attempt_at AT TIME ZONE COALESCE(s.time_zone, b.default_time_zone), 'YYYY-MM-DD HH24:MI') AS local
         FROM broadcast_deliveries d JOIN broadcasts b USING (broadcast_id) LEFT JOIN broadcast_subscribers s USING (chat_id)
        ORDER BY d.broadcast_id, d.chat_id`,
    );
    // Broadcast 43: 123456 in Tokyo (the UPDATE), 777 in the default Europe/Berlin; the inline one (44): everyone, on 24 December.
    assert.equal(rows.map((r) => [r.broadcast_id, r.chat_id, r.local.slice(11)]), [[43, 777, '09:00'], [43, 123456, '09:00'], [44, 777, '09:00'], [44, 123456, '09:00']]);
    assert.ok(rows.slice(2).every((r) => r.local.startsWith('2026-12-24')), JSON.stringify(rows));
    // Not sent before its moment.
    assert.ok(rows.every((r) => !r.ahead || r.status === 'pending'), JSON.stringify(rows));
    const zones = await db.pool.query(`SELECT time_zone FROM broadcast_subscribers WHERE chat_id = 123456`);
    assert.is(zones.rows[0].time_zone, 'Asia/Tokyo');
  });
});

test.run();
