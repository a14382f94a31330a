// Schedules in the database (issue 16): each tick is enqueued exactly once however many daemons
// take ticks at the same moment, missed ticks are skipped or back-filled by the schedule's window,
// and a row inserted from psql is picked up.
import { EventEmitter } from 'node:events';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BroadcastQueue } from '../../src/broadcast-queue.js';
import { createPool } from '../../src/db/pool.js';
import { silentLogger } from '../../src/log.js';
import { addSchedule, getSchedule, runScheduleNow, setScheduleEnabled, takeDueTicks } from '../../src/schedules/schedules-store.js';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import { createTestDatabase } from '../helpers/db.js';
import { collectEvents, waitForEvent } from '../helpers/wait.js';

const HOUR_MS = 3_600_000;

test('daemons racing on the same ticks enqueue each tick exactly once', async () => {
  const db = await createTestDatabase();
  const pools = Array.from({ length: 4 }, () => createPool({ connectionString: db.url, max: 2, applicationName: 'race', log: silentLogger() }));
  try {
    await addSchedule(db.pool, { name: 'every-minute', cron: '* * * * *', jobType: 'x' });
    const start = Date.parse('2026-12-01T09:00:00Z');
    await db.pool.query(`UPDATE broadcast_queue_schedules SET next_run_at = $1`, [new Date(start)]);
    // Ten minutes, each taken by four "daemons" at the same instant. Exactly one of them takes
    // each tick (the conditional UPDATE); the job_key would hide a second taker from the job
    // count alone, so the takers are counted too.
    for (let minute = 0; minute < 10; minute++) {
      const now = new Date(start + minute * 60_000 + 5_000);
      const reports = (await Promise.all(pools.map((p) => takeDueTicks(p, now)))).flat();
      assert.is(reports.length, 1, `minute ${minute}: ${reports.length} daemons took the tick`);
      assert.equal(reports[0]!.ticks.map((t) => t.getTime()), [start + minute * 60_000]);
    }
    const { rows } = await db.pool.query(`SELECT run_at, count(*)::int AS n FROM broadcast_queue_jobs GROUP BY run_at ORDER BY run_at`);
    assert.is(rows.length, 10);
    assert.ok(rows.every((r) => r.n === 1), JSON.stringify(rows));
    assert.is(rows[0].run_at.toISOString(), '2026-12-01T09:00:00.000Z');
  } finally {
    await Promise.all(pools.map((p) => p.end()));
    await db.drop();
  }
});

test('after downtime missed ticks are skipped by default and back-filled within the window', async () => {
  const db = await createTestDatabase();
  try {
    await addSchedule(db.pool, { name: 'skip', cron: '0 * * * *', jobType: 'skip' });
    await addSchedule(db.pool, { name: 'fill', cron: '0 * * * *', jobType: 'fill', backfillSeconds: 2 * 3600 });
    await db.pool.query(`UPDATE broadcast_queue_schedules SET next_run_at = '2026-12-01T03:00:00Z'`);
    await takeDueTicks(db.pool, new Date('2026-12-01T08:30:00Z'));
    const { rows } = await db.pool.query(`SELECT job_type, array_agg(to_char(run_at AT TIME ZONE 'UTC', 'HH24:MI') ORDER BY run_at) AS ticks FROM broadcast_queue_jobs GROUP BY job_type`);
    assert.equal(rows, [{ job_type: 'fill', ticks: ['07:00', '08:00'] }]);
    for (const name of ['skip', 'fill']) assert.is((await getSchedule(db.pool, name))!.nextRunAt!.toISOString(), '2026-12-01T09:00:00.000Z');
  } finally {
    await db.drop();
  }
});

test('daylight-saving days through the database: a 02:30 (New York\'s fall day: 01:30) schedule enqueues one job that day, in two zones', async () => {
  // The same days as cron.test.ts, taken the way a daemon takes them: takeDueTicks every
  // 10 minutes of the local day and a bit around it (the ticks come late, so a back-fill window).
  const cases = [
    { zone: 'Europe/Berlin', cron: '30 2 * * *', from: '2026-03-28T22:00:00Z', to: '2026-03-29T23:00:00Z', tick: '2026-03-29T01:00:00.000Z' },
    { zone: 'Europe/Berlin', cron: '30 2 * * *', from: '2026-10-24T21:00:00Z', to: '2026-10-25T23:00:00Z', tick: '2026-10-25T00:30:00.000Z' },
    { zone: 'America/New_York', cron: '30 2 * * *', from: '2026-03-08T04:00:00Z', to: '2026-03-09T04:00:00Z', tick: '2026-03-08T07:00:00.000Z' },
    { zone: 'America/New_York', cron: '30 1 * * *', from: '2026-11-01T03:00:00Z', to: '2026-11-02T04:00:00Z', tick: '2026-11-01T05:30:00.000Z' },
  ];
  const db = await createTestDatabase();
  try {
    for (const [i, c] of cases.entries()) {
      await db.pool.query(`INSERT INTO broadcast_queue_schedules (name, cron, time_zone, job_type, backfill_seconds) VALUES ($1, $2, $3, $1, 900)`, [`dst-${i}`, c.cron, c.zone]);
      for (let t = Date.parse(c.from); t <= Date.parse(c.to); t += 600_000) await takeDueTicks(db.pool, new Date(t));
      await db.pool.query(`UPDATE broadcast_queue_schedules SET enabled = false WHERE name = $1`, [`dst-${i}`]);
      const { rows } = await db.pool.query(`SELECT run_at FROM broadcast_queue_jobs WHERE job_type = $1`, [`dst-${i}`]);
      assert.equal(rows.map((r) => r.run_at.toISOString()), [c.tick], `${c.zone} ${c.cron} from ${c.from}`);
    }
  } finally {
    await db.drop();
  }
});

test('a schedule inserted from psql is picked up; pause, resume and run-now', async () => {
  const db = await createTestDatabase();
  try {
    await db.pool.query(`INSERT INTO broadcast_queue_schedules (name, cron, time_zone, job_type, payload) VALUES ('digest', '0 9 * * 1', 'Europe/Berlin', 'digest', '{"week": true}')`);
    await takeDueTicks(db.pool, new Date('2026-12-02T12:00:00Z'));
    // Monday 7 December 2026, 09:00 in Berlin (CET).
    assert.is((await getSchedule(db.pool, 'digest'))!.nextRunAt!.toISOString(), '2026-12-07T08:00:00.000Z');
    await setScheduleEnabled(db.pool, 'digest', false);
    assert.equal(await takeDueTicks(db.pool, new Date('2026-12-07T08:00:30Z')), []);
    await setScheduleEnabled(db.pool, 'digest', true);
    assert.is((await getSchedule(db.pool, 'digest'))!.nextRunAt, null);
    const job = await runScheduleNow(db.pool, 'digest');
    const { rows } = await db.pool.query(`SELECT job_type, payload FROM broadcast_queue_jobs WHERE job_id = $1`, [job!.jobId]);
    assert.equal(rows[0], { job_type: 'digest', payload: { week: true } });
    assert.is(await runScheduleNow(db.pool, 'nope'), null);
    const bad = await db.pool.query(`INSERT INTO broadcast_queue_schedules (name, cron, time_zone) VALUES ('x', '* * * * *', 'Mars/Olympus')`).then(() => null, (e: Error) => e);
    assert.match(bad!.message, /time zone "Mars\/Olympus" not recognized/);
  } finally {
    await db.drop();
  }
});

test('a schedule inserted from psql while a daemon runs wakes its ticker at once (NOTIFY), not at the next 30 s re-read', async () => {
  const db = await createTestDatabase();
  const queue = new BroadcastQueue({ connectionString: db.url, sweepMs: HOUR_MS, handlers: { tick: () => null } });
  try {
    await queue.start();
    // The ticker's first pass found no schedule, so it sleeps for its 30 s re-read. The bound
    // below is shorter than that: only a wake-up can bring the first tick's job before it. What is
    // asserted is that the job comes, not how fast.
    const ran = waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobType === 'tick', 20_000);
    await db.pool.query(`INSERT INTO broadcast_queue_schedules (name, cron, job_type) VALUES ('each-second', '* * * * * *', 'tick')`);
    assert.is((await ran).outcome.kind, 'completed');
    // The ticker's own statements (taking ticks, filling next_run_at) notify nobody; a resume does.
    const notified: string[] = [];
    const listen = await db.pool.connect();
    try {
      listen.on('notification', (n) => notified.push(n.channel));
      await listen.query('LISTEN broadcast_queue_schedules');
      await takeDueTicks(db.pool, new Date(Date.now() + 5_000));
      await db.pool.query(`UPDATE broadcast_queue_schedules SET next_run_at = NULL`);
      await takeDueTicks(db.pool);
      await setScheduleEnabled(db.pool, 'each-second', false);
      await listen.query('SELECT 1');
      assert.equal(notified, ['broadcast_queue_schedules'], 'only the UPDATE that cleared next_run_at notifies');
      await setScheduleEnabled(db.pool, 'each-second', true);
      await listen.query('SELECT 1');
      assert.equal(notified, ['broadcast_queue_schedules', 'broadcast_queue_schedules']);
    } finally {
      listen.release(true);
    }
  } finally {
    await queue.stop();
    await db.drop();
  }
});

test('two running daemons share a per-second schedule: every tick runs once', async () => {
  const db = await createTestDatabase();
  const done = new EventEmitter();
  const daemons = [0, 1].map(() => new BroadcastQueue({ connectionString: db.url, sweepMs: HOUR_MS, handlers: { tick: () => null } }));
  try {
    // Added before either starts, so that both take part from their first pass.
    await addSchedule(db.pool, { name: 'each-second', cron: '* * * * * *', jobType: 'tick' });
    for (const d of daemons) d.on('job:done', (e: JobEvent) => done.emit('job:done', e));
    const five = collectEvents<JobEvent>(done, 'job:done', 5);
    await Promise.all(daemons.map((d) => d.start()));
    await five;
    await setScheduleEnabled(db.pool, 'each-second', false);
    const { rows } = await db.pool.query(`SELECT run_at, count(*)::int AS n FROM broadcast_queue_jobs GROUP BY run_at`);
    assert.ok(rows.length >= 5);
    assert.ok(rows.every((r) => r.n === 1), JSON.stringify(rows));
  } finally {
    await Promise.all(daemons.map((d) => d.stop()));
    await db.drop();
  }
});

test('the library manages schedules, and ticks keep coming, each once, while daemons come and go', async () => {
  const db = await createTestDatabase();
  const done = new EventEmitter();
  const make = () => {
    const d = new BroadcastQueue({ connectionString: db.url, sweepMs: HOUR_MS, handlers: { tick: () => null } });
    d.on('job:done', (e: JobEvent) => done.emit('job:done', e));
    return d;
  };
  const [a, b, c] = [make(), make(), make()];
  try {
    await a.start();
    const first = collectEvents<JobEvent>(done, 'job:done', 2);
    await a.addSchedule({ name: 'each-second', cron: '* * * * * *', jobType: 'tick' });
    assert.equal((await a.listSchedules()).map((s) => [s.name, s.enabled]), [['each-second', true]]);
    await first;
    // a hands over to b, then b to c: each switch waits for ticks taken after it.
    await b.start();
    await a.stop();
    await collectEvents<JobEvent>(done, 'job:done', 2);
    await c.start();
    await b.stop();
    await collectEvents<JobEvent>(done, 'job:done', 2);
    assert.equal(await c.setScheduleEnabled('each-second', false).then((s) => s?.enabled), false);
    const now = await c.runScheduleNow('each-second');
    assert.ok(now && now.jobId > 0);
    assert.is(await c.removeSchedule('each-second'), true);
    assert.equal(await c.listSchedules(), []);
    const { rows } = await db.pool.query(`SELECT extract(epoch FROM run_at)::bigint AS second, count(*)::int AS n FROM broadcast_queue_jobs WHERE job_key IS NOT NULL GROUP BY 1 ORDER BY 1`);
    assert.ok(rows.length >= 6, JSON.stringify(rows));
    assert.ok(rows.every((r) => r.n === 1), JSON.stringify(rows));
    // No tick skipped across the hand-overs: one job for every second from the first to the last.
    assert.is(Number(rows.at(-1).second) - Number(rows[0].second) + 1, rows.length, JSON.stringify(rows));
  } finally {
    await Promise.all([a, b, c].map((d) => d.stop()));
    await db.drop();
  }
});

test.run();
