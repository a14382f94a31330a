// The statistics states a production jobs table passes through, and EXPLAIN ANALYZE that changes
// nothing: for tests that check a statement's plan shape (never its time, which a busy machine
// blurs) whatever ANALYZE last saw (issue 13).
import type { TestDatabase } from './db.js';

export interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'Actual Rows'?: number;
  'Actual Loops'?: number;
  'Rows Removed by Filter'?: number;
  'Rows Removed by Index Recheck'?: number;
  Plans?: PlanNode[];
}

/** The node and every node below it. */
export const nodes = (n: PlanNode): PlanNode[] => [n, ...(n.Plans ?? []).flatMap(nodes)];

export const STATISTICS_STATES = ['never analyzed', 'analyzed empty', 'analyzed after a drained burst', 'fresh'] as const;
export type StatisticsState = (typeof STATISTICS_STATES)[number];

/** `jobs` pending no-op jobs of `jobType`, each with a distinct payload. */
export const insertBurst = (db: TestDatabase, jobs: number, jobType = 'noop') =>
  db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, payload) SELECT $2, jsonb_build_object('seq', g) FROM generate_series(1, $1::int) g`, [jobs, jobType]);

/** The jobs table as `state` leaves it, then a burst of `jobs` pending jobs. */
export async function prepareStatistics(db: TestDatabase, state: StatisticsState, jobs: number): Promise<void> {
  await db.pool.query('TRUNCATE broadcast_queue_jobs');
  if (state === 'analyzed empty') await db.pool.query('ANALYZE broadcast_queue_jobs');
  if (state === 'analyzed after a drained burst') {
    await insertBurst(db, jobs);
    await db.pool.query(`UPDATE broadcast_queue_jobs SET status = 'completed', attempts = 1, started_at = now(), finished_at = now()`);
    await db.pool.query('ANALYZE broadcast_queue_jobs');
  }
  await insertBurst(db, jobs);
  if (state === 'fresh') await db.pool.query('ANALYZE broadcast_queue_jobs');
}

/** EXPLAIN ANALYZE of `sql` in a transaction rolled back, so the statement changes nothing. */
export async function explainedInRollback(db: TestDatabase, sql: string, params: unknown[]): Promise<PlanNode> {
  const client = await db.pool.connect();
  try {
    await client.query('BEGIN');
    const { rows } = await client.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${sql}`, params);
    return rows[0]['QUERY PLAN'][0].Plan;
  } finally {
    await client.query('ROLLBACK');
    client.release();
  }
}
