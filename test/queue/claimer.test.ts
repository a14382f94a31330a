import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CLAIM_SQL } from '../../src/queue/claimer.js';
import { createTestDatabase } from '../helpers/db.js';

test('a claim does not walk past a backlog of job types this daemon does not run', async () => {
  const db = await createTestDatabase();
  try {
    await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, payload)
                         SELECT 'send', '{}'::jsonb FROM generate_series(1, 5000) UNION ALL SELECT 'mine', '{}'::jsonb`);
    await db.pool.query('ANALYZE broadcast_queue_jobs');
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      const { rows } = await client.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${CLAIM_SQL}`, [['broadcasts'], ['mine'], 10, 'test-daemon']);
      await client.query('ROLLBACK');
      const removed = (node: any): number => (node['Rows Removed by Filter'] ?? 0) + (node.Plans ?? []).reduce((n: number, p: any) => n + removed(p), 0);
      assert.ok(removed(rows[0]['QUERY PLAN'][0].Plan) < 100, `the claim filtered ${removed(rows[0]['QUERY PLAN'][0].Plan)} rows of other job types`);
    } finally {
      client.release();
    }
  } finally {
    await db.drop();
  }
});

test.run();
