// A status or metrics read that overruns is cancelled on the server, not only abandoned by the
// client: an abandoned scan kept running, and a scrape every 15 s piled them up.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { jobGauges } from '../../src/queue/job-counts.js';
import { createTestDatabase } from '../helpers/db.js';

test('a /metrics read that overruns its time is cancelled on the server', async () => {
  const db = await createTestDatabase();
  const holder = new pg.Client({ connectionString: db.url });
  try {
    await holder.connect();
    // The scrape's scan waits behind this lock for as long as we hold it: a stand-in for a slow scan.
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE broadcast_queue_jobs IN ACCESS EXCLUSIVE MODE');
    const error = await jobGauges(db.pool, ['broadcasts'], 300).then(() => null, (e: Error) => e);
    assert.match(String(error?.message), /statement timeout/);
    const still = await holder.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND query LIKE '%GROUP BY queue, status%' AND pid <> pg_backend_pid()`,
    );
    assert.is(still.rows[0].n, 0, 'the abandoned scan is still running on the server');
    await holder.query('ROLLBACK');
    const gauges = await jobGauges(db.pool, ['broadcasts'], 300);
    assert.equal(gauges.byState, []);
  } finally {
    await holder.end().catch(() => undefined);
    await db.drop();
  }
});

test.run();
