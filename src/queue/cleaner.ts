import type { Pool } from '../db/pool.js';
import type { MaintenanceReport, MaintenanceTask } from './maintenance.js';

// Small batches keep each DELETE short, so it never holds locks or bloats WAL in one burst.
const BATCH = 1_000;

const CLEAN_SQL = `
  DELETE FROM broadcast_queue_jobs
   WHERE job_id IN (
     SELECT job_id FROM broadcast_queue_jobs
      WHERE status IN ('completed', 'failed', 'cancelled')
        AND finished_at < now() - $1::float8 * interval '1 day'
      LIMIT ${BATCH})`;

// A pacing row matters for a minute after its chat's last send (sql/0002_broadcasts.sql); without
// this the table would keep a row for every chat ever sent to.
const PACING_SQL = `
  DELETE FROM broadcast_chat_pacing
   WHERE (bot_id, chat_id) IN (
     SELECT bot_id, chat_id FROM broadcast_chat_pacing
      WHERE next_allowed_at < now() - interval '1 minute'
      LIMIT ${BATCH})`;

async function deleteInBatches(pool: Pool, sql: string, params: unknown[], signal?: AbortSignal): Promise<number> {
  let total = 0;
  for (;;) {
    const { rowCount } = await pool.query(sql, params);
    total += rowCount ?? 0;
    if ((rowCount ?? 0) < BATCH || signal?.aborted) return total;
  }
}

/** Deletes per-chat pacing rows no send can need any more; returns how many. */
export function deleteStalePacing(pool: Pool, signal?: AbortSignal): Promise<number> {
  return deleteInBatches(pool, PACING_SQL, [], signal);
}

/** Deletes finished jobs older than the retention; returns how many. Stops between batches once `signal` aborts. */
export function deleteFinishedJobs(pool: Pool, olderThanDays: number, signal?: AbortSignal): Promise<number> {
  return deleteInBatches(pool, CLEAN_SQL, [olderThanDays], signal);
}

/** The maintenance task for finished jobs older than `retentionDays` (cleanupDays), and stale pacing rows with them. */
export function finishedJobsCleanup(pool: Pool, retentionDays: number): MaintenanceTask {
  return {
    name: 'cleanup',
    days: retentionDays,
    async run(signal) {
      const reports: MaintenanceReport[] = [];
      const deleted = await deleteFinishedJobs(pool, retentionDays, signal);
      if (deleted) reports.push({ level: 'info', fields: { deleted, retentionDays }, message: 'old finished jobs deleted' });
      if (signal.aborted) return reports;
      const pacing = await deleteStalePacing(pool, signal);
      if (pacing) reports.push({ level: 'debug', fields: { deleted: pacing }, message: 'stale per-chat pacing rows deleted' });
      return reports;
    },
  };
}
