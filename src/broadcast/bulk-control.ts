// Retry or cancel every job a search matches (the dashboard's "every job matching the filter").
// The search is the list's own (searchConditions), bounded above by the newest id when the operator
// was asked to confirm, so jobs enqueued since are not touched. It runs in batches by key, each its
// own statement or transaction (retryJobs, cancelJobs), so a million-row cancel never holds a
// million row locks at once, and a running daemon keeps claiming between batches.
import type { Pool, PoolClient } from '../db/pool.js';
import { cancelJobs } from './control.js';
import { retryJobs, searchConditions, type JobActionResult, type JobSearch } from '../queue/jobs-store.js';

export type BulkAction = 'retry' | 'cancel';

/** The jobs each action applies to; the others in a search are left as they are (as retryJobs and cancelJobs would). */
const APPLIES_TO: Record<BulkAction, string> = {
  retry: `status IN ('failed', 'cancelled')`,
  cancel: `(status IN ('pending', 'waiting') OR (status = 'processing' AND job_type = 'broadcast'))`,
};

/** Rows one batch changes, and locks for its one statement (retry) or transaction (cancel). */
export const BULK_BATCH = 1_000;
/** The most one bulk action takes on; beyond it the operator narrows the filter (or uses bqctl). */
export const BULK_LIMIT = 1_000_000;

export interface BulkTarget {
  action: BulkAction;
  /** The search as the list has it (its `before` is ignored: every page of it is meant). */
  search: JobSearch;
  /** The newest job id when the operator confirmed: newer jobs are not touched. */
  upTo: number;
}

function statement(target: BulkTarget, tail: (params: unknown[]) => string): { sql: string; params: unknown[] } {
  const params: unknown[] = [];
  const { before: _ignored, ...search } = target.search;
  const where = [...searchConditions(search, params), APPLIES_TO[target.action], `job_id <= $${params.push(target.upTo)}`];
  return { sql: `FROM broadcast_queue_jobs WHERE ${where.join(' AND ')} ${tail(params)}`, params };
}

/** The newest job id now: the bound a confirmation shows and its action keeps to. */
export async function newestJobId(pool: Pool | PoolClient): Promise<number> {
  return Number((await pool.query('SELECT COALESCE(max(job_id), 0) AS top FROM broadcast_queue_jobs')).rows[0].top);
}

/** How many jobs the action would take on now, counted up to BULK_LIMIT + 1 (more is "too many"). */
export async function countBulk(pool: Pool | PoolClient, target: BulkTarget): Promise<number> {
  const { sql, params } = statement(target, (p) => `LIMIT $${p.push(BULK_LIMIT + 1)}`);
  return Number((await pool.query(`SELECT count(*)::int AS n FROM (SELECT 1 ${sql}) AS matched`, params)).rows[0].n);
}

export interface BulkOutcome {
  /** Retried, cancelled, or (a running broadcast job) its broadcast cancelled. */
  done: number;
  /** Changed state or could not be acted on between the count and the action (retryJobs' and cancelJobs' conflicts). */
  refused: number;
  /** The first few refusals, in the operator's words. */
  errors: string[];
  batches: number;
}

// Pending and waiting jobs other than broadcasts are cancelled by one statement a batch: cancelJobs
// runs one UPDATE per job (a broadcast's must cancel its broadcast too), and a 200,000-job bulk
// cancel through it had not finished after 12 minutes (load average ~12). Dependents follow through the statement trigger (sql/0010), as there.
const CANCEL_PLAIN_SQL = `
  UPDATE broadcast_queue_jobs SET status = 'cancelled', finished_at = now(), locked_by = NULL, updated_at = now()
   WHERE job_id = ANY($1::bigint[]) AND status IN ('pending', 'waiting') AND job_type <> 'broadcast'
  RETURNING job_id`;

/** The batch's plain jobs cancelled at once (how many), then the rest through cancelJobs (their results). */
async function cancelBatch(pool: Pool, ids: number[]): Promise<{ cancelled: number; results: JobActionResult[] }> {
  const done = new Set<number>((await pool.query(CANCEL_PLAIN_SQL, [ids])).rows.map((r) => Number(r.job_id)));
  const rest = ids.filter((id) => !done.has(id));
  // Broadcast jobs, and any that changed meanwhile (cancelJobs says why each cannot be cancelled).
  return { cancelled: done.size, results: rest.length ? await cancelJobs(pool, rest) : [] };
}

/** Runs the action over every job the target matches, newest first, `batch` at a time. */
export async function runBulk(pool: Pool, target: BulkTarget, batch: number = BULK_BATCH): Promise<BulkOutcome> {
  const outcome: BulkOutcome = { done: 0, refused: 0, errors: [], batches: 0 };
  let below = target.upTo + 1;
  let left = BULK_LIMIT;
  while (left > 0) {
    const { sql, params } = statement(target, (p) => `AND job_id < $${p.push(below)} ORDER BY job_id DESC LIMIT $${p.push(Math.min(batch, left))}`);
    const ids: number[] = (await pool.query(`SELECT job_id ${sql}`, params)).rows.map((r) => Number(r.job_id));
    if (ids.length === 0) break;
    let results: JobActionResult[];
    if (target.action === 'retry') results = await retryJobs(pool, ids);
    else {
      const batchDone = await cancelBatch(pool, ids);
      outcome.done += batchDone.cancelled;
      results = batchDone.results;
    }
    outcome.batches++;
    for (const r of results) {
      if (r.outcome === 'retried' || r.outcome === 'cancelled' || r.outcome === 'broadcast_cancelled') outcome.done++;
      else {
        outcome.refused++;
        if (outcome.errors.length < 3) outcome.errors.push(r.outcome === 'conflict' ? r.error : `job ${r.job_id} is gone`);
      }
    }
    below = ids[ids.length - 1]!;
    left -= ids.length;
    if (ids.length < batch) break;
  }
  return outcome;
}
