import type { Pool } from '../db/pool.js';

export interface EnqueueOptions {
  /** Defaults to 'broadcasts'. */
  queue?: string;
  /** Higher runs first. Defaults to 0. */
  priority?: number;
  /** Not before this time. Defaults to now. */
  runAt?: Date;
  /** Defaults to 3. */
  maxAttempts?: number;
  /** At most one unfinished job per key: a second enqueue returns the first job. */
  jobKey?: string;
  /** Jobs that must complete first (their results reach the handler as job.dependencies). */
  dependsOn?: number[];
  /** When a dependency fails or is cancelled: 'cancel' this job too (the default) or 'run' it anyway. */
  onDependencyFailure?: 'cancel' | 'run';
}

export interface EnqueuedJob {
  jobId: number;
  status: string;
  /** True when jobKey matched an unfinished job and no new one was created. */
  existing: boolean;
}

const INSERT_SQL = `
  INSERT INTO broadcast_queue_jobs (queue, job_type, payload, priority, run_at, max_attempts, job_key, depends_on, on_dependency_failure)
  VALUES (COALESCE($1, 'broadcasts'), $2, $3, COALESCE($4, 0), COALESCE($5, now()), COALESCE($6, 3), $7, $8, COALESCE($9, 'cancel'))
  ON CONFLICT (job_key) WHERE job_key IS NOT NULL AND status IN ('pending', 'processing') DO NOTHING
  RETURNING job_id, status`;

export async function enqueueJob(pool: Pool, jobType: string, payload: Record<string, unknown>, options: EnqueueOptions = {}): Promise<EnqueuedJob> {
  const params = [options.queue ?? null, jobType, JSON.stringify(payload), options.priority ?? null, options.runAt ?? null, options.maxAttempts ?? null, options.jobKey ?? null,
    options.dependsOn?.length ? options.dependsOn : null, options.onDependencyFailure ?? null];
  const inserted = await pool.query(INSERT_SQL, params);
  if (inserted.rows[0]) return { jobId: inserted.rows[0].job_id, status: inserted.rows[0].status, existing: false };
  const found = await pool.query(
    `SELECT job_id, status FROM broadcast_queue_jobs WHERE job_key = $1 AND status IN ('waiting', 'pending', 'processing')`,
    [options.jobKey],
  );
  // The other job finished between the two statements: its key is free again.
  if (!found.rows[0]) return enqueueJob(pool, jobType, payload, options);
  return { jobId: found.rows[0].job_id, status: found.rows[0].status, existing: true };
}
