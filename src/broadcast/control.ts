// What an operator does to a broadcast, through the admin API or bqctl: pause, resume, cancel,
// and cancelling the job that drives one. Each runs in one transaction.
import type { Pool, PoolClient } from '../db/pool.js';
import { inTransaction } from '../db/transaction.js';
import { enqueueJob, type EnqueueOptions, type EnqueuedJob } from '../queue/enqueue.js';
import { cancelPendingJob, getJob, type JobActionResult, type JobStatus } from '../queue/jobs-store.js';
import { FINAL_STATUSES, broadcastJobKey, drivesBroadcast, insertBroadcastJob, type BroadcastStatus } from './broadcasts-store.js';
import { broadcastProgress, type BroadcastProgress } from './progress.js';
import { skipPending } from './ledger.js';

export type BroadcastAction = 'pause' | 'resume' | 'cancel';

// The broadcast a job drives: its payload's broadcast_id (guarded, so a malformed payload cannot
// make the cast fail), else the broadcasts row that names the job.
const JOB_BROADCAST_ID = `
  COALESCE(CASE WHEN j.payload ->> 'broadcast_id' ~ '^[0-9]{1,15}$' THEN (j.payload ->> 'broadcast_id')::bigint END,
           (SELECT b.broadcast_id FROM broadcasts b WHERE b.job_id = j.job_id ORDER BY b.broadcast_id LIMIT 1))`;
// Cancelling a broadcast. The unfinished broadcast jobs that drive it are locked first (the same
// order as cancelJobs, so the two cannot deadlock each other), which also keeps a pending one from
// being claimed until the transaction ends.
const LOCK_BROADCAST_JOBS_SQL = `
  SELECT j.job_id, j.status
    FROM broadcast_queue_jobs j
   WHERE ${drivesBroadcast('j', '$1', '(SELECT b.job_id FROM broadcasts b WHERE b.broadcast_id = $1)')}
     FOR UPDATE OF j`;
// With no engine running it, the broadcast is final now (finished_at set here); a running engine
// sees 'cancelled' at its next control check, skips the rest itself and sets finished_at.
const CANCEL_BROADCAST_SQL = `
  UPDATE broadcasts
     SET status = 'cancelled', updated_at = now(),
         finished_at = CASE WHEN $3::bool THEN finished_at ELSE COALESCE(finished_at, now()) END
   WHERE broadcast_id = $1 AND NOT (status = ANY($2::text[]))
  RETURNING broadcast_id`;

/** Cancels a broadcast that is not final; false if it is final or does not exist. */
async function cancelBroadcastIn(client: PoolClient, broadcastId: number): Promise<boolean> {
  const jobs = await client.query(LOCK_BROADCAST_JOBS_SQL, [broadcastId]);
  const running = jobs.rows.some((j) => j.status === 'processing');
  const { rows } = await client.query(CANCEL_BROADCAST_SQL, [broadcastId, FINAL_STATUSES, running]);
  if (!rows[0]) return false;
  // Only when no engine runs it: the engine would otherwise find nothing left to send before its
  // next control check and record the broadcast as completed.
  if (!running) await skipPending(client, broadcastId, 'cancelled', null);
  return true;
}

/**
 * Cancels jobs. A pending job becomes cancelled (and a broadcast it drives is cancelled with
 * it). A running broadcast job is cancelled through its broadcast: the engine stops at its next
 * control check and the job completes with status 'cancelled' in its result. Any other running
 * or finished job is a conflict. One result per distinct id, in the order given.
 */
export async function cancelJobs(pool: Pool, jobIds: readonly number[]): Promise<JobActionResult[]> {
  const ids = [...new Set(jobIds)];
  return inTransaction(pool, async (client) => {
    const { rows } = await client.query(
      `SELECT j.job_id, j.job_type, j.status, ${JOB_BROADCAST_ID} AS broadcast_id
         FROM broadcast_queue_jobs j WHERE j.job_id = ANY($1::bigint[]) FOR UPDATE`,
      [ids],
    );
    const found = new Map<number, { job_type: string; status: JobStatus; broadcast_id: number | null }>(rows.map((r) => [r.job_id, r]));
    const results: JobActionResult[] = [];
    for (const jobId of ids) {
      const row = found.get(jobId);
      if (!row) {
        results.push({ job_id: jobId, outcome: 'not_found' });
        continue;
      }
      const isBroadcast = row.job_type === 'broadcast';
      if (row.status === 'pending' || row.status === 'waiting') {
        const cancelled = await cancelPendingJob(client, jobId);
        // A paused broadcast's job waits as pending: its broadcast must not stay 'paused' forever.
        if (isBroadcast && row.broadcast_id !== null) await cancelBroadcastIn(client, row.broadcast_id);
        results.push({ job_id: jobId, outcome: 'cancelled', job: cancelled! });
      } else if (row.status === 'processing' && isBroadcast && row.broadcast_id !== null && (await cancelBroadcastIn(client, row.broadcast_id))) {
        const job = await getJob(client, jobId);
        results.push({ job_id: jobId, outcome: 'broadcast_cancelled', job: job!, broadcast_id: row.broadcast_id });
      } else if (row.status === 'processing') {
        results.push({
          job_id: jobId, outcome: 'conflict', status: row.status,
          error: isBroadcast ? `job ${jobId} is running and its broadcast is already finishing` : `job ${jobId} is running; cancel its broadcast instead, or wait for it to finish`,
        });
      } else {
        results.push({ job_id: jobId, outcome: 'conflict', status: row.status, error: `job ${jobId} is ${row.status}; only pending or waiting jobs (and running broadcasts) can be cancelled` });
      }
    }
    return results;
  });
}

export type BroadcastActionResult =
  | { outcome: 'updated'; broadcast: BroadcastProgress }
  | { outcome: 'not_found' }
  | { outcome: 'conflict'; status: BroadcastStatus; error: string };

/** Which statuses each action applies to, and what it sets. */
const TRANSITIONS: Record<BroadcastAction, { from: readonly BroadcastStatus[]; to: BroadcastStatus }> = {
  pause: { from: ['sending', 'queued', 'draft'], to: 'paused' },
  resume: { from: ['paused'], to: 'sending' }, // or back to 'draft' when nothing will send it (resumeBroadcastIn)
  cancel: { from: ['draft', 'queued', 'sending', 'paused'], to: 'cancelled' },
};

/**
 * Pauses (from sending, queued or draft), resumes (from paused, to sending) or cancels (from any
 * status that is not final) a broadcast. A running engine notices within about half a second;
 * resuming wakes a paused broadcast's job at once (the _500_wake_on_resume trigger); cancelling
 * also skips the recipients not yet sent, so the counts add up even when no engine runs it.
 */
export async function setBroadcastStatus(pool: Pool, broadcastId: number, action: BroadcastAction): Promise<BroadcastActionResult> {
  const rule = TRANSITIONS[action];
  if (!rule) throw new TypeError(`unknown broadcast action ${JSON.stringify(action)}; use pause, resume or cancel`);
  return inTransaction(pool, async (client) => {
    let changed: boolean;
    if (action === 'cancel') {
      changed = await cancelBroadcastIn(client, broadcastId);
    } else if (action === 'resume') {
      changed = await resumeBroadcastIn(client, broadcastId);
    } else {
      const { rows } = await client.query(
        `UPDATE broadcasts SET status = $2, updated_at = now() WHERE broadcast_id = $1 AND status = ANY($3::text[]) RETURNING broadcast_id`,
        [broadcastId, rule.to, rule.from],
      );
      changed = rows.length > 0;
    }
    const broadcast = await broadcastProgress(client, broadcastId);
    if (!broadcast) return { outcome: 'not_found' };
    if (!changed) {
      return { outcome: 'conflict', status: broadcast.status, error: `broadcast ${broadcastId} is ${broadcast.status}; ${action} applies only to a broadcast that is ${rule.from.join(', ')}` };
    }
    return { outcome: 'updated', broadcast };
  });
}

const DRIVING_JOB = `SELECT j.job_id FROM broadcast_queue_jobs j WHERE ${drivesBroadcast('j', 'b.broadcast_id', 'b.job_id')}`;

/**
 * Resumes a paused broadcast. Only one that a job drives, or whose sending had begun (fanned out), becomes
 * 'sending' again: a paused draft went back to 'sending' with no job to send it, and stayed so.
 * A started broadcast whose job is gone gets a new one (keyed, so at most one).
 */
async function resumeBroadcastIn(client: PoolClient, broadcastId: number): Promise<boolean> {
  const { rows } = await client.query(
    `UPDATE broadcasts b
        SET status = CASE WHEN b.started_at IS NOT NULL OR EXISTS (${DRIVING_JOB})
                            OR EXISTS (SELECT 1 FROM broadcast_deliveries d WHERE d.broadcast_id = b.broadcast_id)
                          THEN 'sending' ELSE 'draft' END, updated_at = now()
      WHERE b.broadcast_id = $1 AND b.status = 'paused'
     RETURNING b.status, b.job_id, EXISTS (${DRIVING_JOB}) AS driven`,
    [broadcastId],
  );
  const b = rows[0];
  if (!b) return false;
  if (b.status === 'sending' && !b.driven) {
    await client.query(
      `WITH j AS (
         ${insertBroadcastJob('$1', { queue: `COALESCE((SELECT queue FROM broadcast_queue_jobs WHERE job_id = $2), 'broadcasts')` })}
         RETURNING job_id)
       UPDATE broadcasts SET job_id = j.job_id FROM j WHERE broadcast_id = $1`,
      [broadcastId, b.job_id],
    );
  }
  return true;
}

/** Enqueues the job that sends a saved broadcast (keyed, so at most one unfinished one), and marks a draft queued. */
export async function enqueueBroadcast(pool: Pool, broadcastId: number, options: EnqueueOptions): Promise<EnqueuedJob> {
  const job = await enqueueJob(pool, 'broadcast', { broadcast_id: broadcastId }, { ...options, jobKey: broadcastJobKey(broadcastId) });
  await pool.query(`UPDATE broadcasts SET status = 'queued', updated_at = now() WHERE broadcast_id = $1 AND status = 'draft'`, [broadcastId]);
  return job;
}
