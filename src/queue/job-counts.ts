// Job counts, read without touching the rows kept: active jobs through the partial indexes on
// pending and processing, finished ones from the counts kept as jobs finish (sql/0007_job_counts.sql)
// and per-minute finish counts. /metrics, /statistics, getStatus() and bqctl status read them here.
import type { Pool, PoolClient } from '../db/pool.js';
import { boundedRead } from '../db/bounded-read.js';
import { withTimeout } from '../db/health.js';
import type { JobStatus } from './jobs-store.js';

export interface JobStatistics {
  totalJobs: number;
  byStatus: Record<JobStatus, number>;
  /** Per job type: its total and its count in each status. */
  byJobType: Record<string, { total: number } & Record<JobStatus, number>>;
  completedLastHour: number;
  completedLast24h: number;
  failedLastHour: number;
  failedLast24h: number;
  /** Mean started_at → finished_at of the jobs completed in the last hour; null when none. */
  averageDurationSecondsLastHour: number | null;
  /** Jobs that needed more than one attempt. */
  retriedJobs: number;
}

const emptyByStatus = (): Record<JobStatus, number> => ({ waiting: 0, pending: 0, processing: 0, completed: 0, failed: 0, cancelled: 0 });

/**
 * Totals over every job. Active jobs through the partial indexes; finished ones from the counts
 * kept as jobs finish (sql/0007_job_counts.sql), and the windows from per-minute counts, so that
 * nothing here grows with the jobs kept. The windows are counted to the minute: the minute the
 * window starts in counts whole. Run it inside boundedRead: one connection runs them in turn, and
 * the timeout is set on its transaction.
 */
export async function readJobStatistics(pool: PoolClient): Promise<JobStatistics> {
  const [byType, recent, retried] = [
    await pool.query(
      `SELECT job_type, 'pending' AS status, count(*)::int AS n FROM broadcast_queue_jobs WHERE status = 'pending' GROUP BY job_type
       UNION ALL
       SELECT job_type, 'waiting', count(*)::int FROM broadcast_queue_jobs WHERE status = 'waiting' GROUP BY job_type
       UNION ALL
       SELECT job_type, 'processing', count(*)::int FROM broadcast_queue_jobs WHERE status = 'processing' GROUP BY job_type
       UNION ALL
       SELECT job_type, status, sum(jobs)::int FROM broadcast_queue_job_counts GROUP BY job_type, status HAVING sum(jobs) <> 0`,
    ),
    await pool.query(
      `SELECT COALESCE(sum(jobs) FILTER (WHERE status = 'completed' AND minute >= date_trunc('minute', now() - interval '1 hour')), 0)::int AS completed_1h,
              COALESCE(sum(jobs) FILTER (WHERE status = 'completed'), 0)::int AS completed_24h,
              COALESCE(sum(jobs) FILTER (WHERE status = 'failed' AND minute >= date_trunc('minute', now() - interval '1 hour')), 0)::int AS failed_1h,
              COALESCE(sum(jobs) FILTER (WHERE status = 'failed'), 0)::int AS failed_24h,
              (sum(duration_seconds) FILTER (WHERE status = 'completed' AND minute >= date_trunc('minute', now() - interval '1 hour'))
                / NULLIF(sum(jobs) FILTER (WHERE status = 'completed' AND minute >= date_trunc('minute', now() - interval '1 hour')), 0))::float8 AS avg_seconds_1h
         FROM broadcast_queue_job_finishes
        WHERE minute >= date_trunc('minute', now() - interval '24 hours')`,
    ),
    await pool.query(
      `SELECT (SELECT COALESCE(sum(jobs), 0) FROM broadcast_queue_job_counts WHERE retried)
            + (SELECT count(*) FROM broadcast_queue_jobs WHERE status = 'pending' AND attempts > 1)
            + (SELECT count(*) FROM broadcast_queue_jobs WHERE status = 'processing' AND attempts > 1) AS n`,
    ),
  ];
  const byStatus = emptyByStatus();
  const perType: JobStatistics['byJobType'] = {};
  let totalJobs = 0;
  for (const r of byType.rows) {
    const t = (perType[r.job_type] ??= { total: 0, ...emptyByStatus() });
    t[r.status as JobStatus] = r.n;
    t.total += r.n;
    byStatus[r.status as JobStatus] += r.n;
    totalJobs += r.n;
  }
  const w = recent.rows[0];
  return {
    totalJobs,
    byStatus,
    byJobType: perType,
    completedLastHour: w.completed_1h,
    completedLast24h: w.completed_24h,
    failedLastHour: w.failed_1h,
    failedLast24h: w.failed_24h,
    averageDurationSecondsLastHour: w.avg_seconds_1h,
    retriedJobs: Number(retried.rows[0].n),
  };
}

// Jobs per queue and status, with how many pending ones are due and the age of the oldest due one.
// Pending and processing jobs through their partial indexes, so the cost is what is active;
// finished jobs from the counts kept as they finish (sql/0007_job_counts.sql), not from the rows kept.
export const JOB_COUNTS_SQL = `
  SELECT queue, 'pending' AS status, count(*)::int AS n, count(*) FILTER (WHERE run_at <= now())::int AS due,
         extract(epoch FROM now() - min(run_at) FILTER (WHERE run_at <= now()))::float8 AS oldest_due
    FROM broadcast_queue_jobs WHERE status = 'pending' GROUP BY queue
  UNION ALL
  SELECT queue, 'processing', count(*)::int, 0, NULL FROM broadcast_queue_jobs WHERE status = 'processing' GROUP BY queue
  UNION ALL
  SELECT queue, 'waiting', count(*)::int, 0, NULL FROM broadcast_queue_jobs WHERE status = 'waiting' GROUP BY queue
  UNION ALL
  SELECT queue, status, sum(jobs)::int, 0, NULL FROM broadcast_queue_job_counts GROUP BY queue, status HAVING sum(jobs) <> 0`;

export interface JobGaugeSnapshot {
  /** Jobs per queue and status (only the pairs that exist). */
  byState: { queue: string; status: JobStatus; count: number }[];
  /** Per queue with pending jobs: how many are due now, and the age of the oldest due one. */
  pending: { queue: string; due: number; oldestDueSeconds: number | null }[];
}

/** The queue label of jobs in queues the daemon was not configured for. */
export const OTHER_QUEUES_LABEL = 'other';

/**
 * The job counts /metrics exposes as gauges, read at scrape time: active jobs through their partial
 * indexes, finished ones from the kept counts (sql/0007_job_counts.sql). Queues outside
 * `queues` (the daemon's configuration) are summed under OTHER_QUEUES_LABEL, so producers cannot
 * decide how many series exist (20k queue names once made 100,005 series, 7.8 MB per scrape).
 */
export async function jobGauges(pool: Pool, queues: readonly string[], timeoutMs = 2_000): Promise<JobGaugeSnapshot> {
  const { rows } = await boundedRead(pool, (client) => client.query({ ...withTimeout(
    `SELECT CASE WHEN queue = ANY($1::text[]) THEN queue ELSE $2 END AS queue, status, sum(n)::int AS n, sum(due)::int AS due,
            max(oldest_due) AS oldest_due
       FROM (${JOB_COUNTS_SQL}) c
      GROUP BY 1, status HAVING sum(n) <> 0 ORDER BY 1, status`,
    // The server cancels the scan at timeoutMs; this later client-side limit covers a dead connection.
    timeoutMs + 1_000,
  ), values: [queues, OTHER_QUEUES_LABEL] }), timeoutMs);
  return {
    byState: rows.map((r: any) => ({ queue: r.queue, status: r.status, count: r.n })),
    pending: rows.filter((r: any) => r.status === 'pending').map((r: any) => ({ queue: r.queue, due: r.due, oldestDueSeconds: r.oldest_due === null ? null : Math.max(0, r.oldest_due) })),
  };
}

/** Jobs finished per bucket: [bucket start in epoch seconds, completed, failed]. */
export type ThroughputPoint = [number, number, number];

/**
 * Completed and failed jobs per `bucketMinutes` over the last `hours`, oldest first, from the
 * per-minute finish counts (kept 25 hours), so the cost is the minutes, not the jobs. Empty buckets
 * are there with zeros: a chart's gap means no data, not no work.
 */
export async function jobThroughput(pool: Pool | PoolClient, hours: number, bucketMinutes: number): Promise<ThroughputPoint[]> {
  const { rows } = await pool.query(
    `WITH buckets AS (
       SELECT generate_series(date_bin($2::float8 * interval '1 minute', now() - $1::float8 * interval '1 hour', 'epoch'),
                              now(), $2::float8 * interval '1 minute') AS t),
     f AS (
       SELECT date_bin($2::float8 * interval '1 minute', minute, 'epoch') AS t,
              sum(jobs) FILTER (WHERE status = 'completed') AS completed, sum(jobs) FILTER (WHERE status = 'failed') AS failed
         FROM broadcast_queue_job_finishes WHERE minute >= now() - $1::float8 * interval '1 hour' - $2::float8 * interval '1 minute'
        GROUP BY 1)
     SELECT extract(epoch FROM b.t)::float8 AS t, COALESCE(f.completed, 0)::float8 AS completed, COALESCE(f.failed, 0)::float8 AS failed
       FROM buckets b LEFT JOIN f USING (t) ORDER BY b.t`,
    [hours, bucketMinutes],
  );
  return rows.map((r) => [r.t, r.completed, r.failed]);
}
