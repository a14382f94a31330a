import type { Pool } from '../db/pool.js';
import { errorMessage, type Logger } from '../log.js';

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

async function deleteInBatches(pool: Pool, sql: string, params: unknown[]): Promise<number> {
  let total = 0;
  for (;;) {
    const { rowCount } = await pool.query(sql, params);
    total += rowCount ?? 0;
    if ((rowCount ?? 0) < BATCH) return total;
  }
}

/** Deletes per-chat pacing rows no send can need any more; returns how many. */
export function deleteStalePacing(pool: Pool): Promise<number> {
  return deleteInBatches(pool, PACING_SQL, []);
}

/** Deletes finished jobs older than the retention; returns how many. */
export function deleteFinishedJobs(pool: Pool, olderThanDays: number): Promise<number> {
  return deleteInBatches(pool, CLEAN_SQL, [olderThanDays]);
}

/** Runs the cleaner at start and then on an interval (hourly by default). */
export class Cleaner {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly pool: Pool,
    private readonly retentionDays: number,
    private readonly log: Logger,
    private readonly intervalMs = 3_600_000,
  ) {}

  start(): void {
    void this.run();
    this.timer = setInterval(() => void this.run(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  async run(): Promise<number> {
    try {
      const deleted = await deleteFinishedJobs(this.pool, this.retentionDays);
      if (deleted) this.log.info({ deleted, retentionDays: this.retentionDays }, 'old finished jobs deleted');
      const pacing = await deleteStalePacing(this.pool);
      if (pacing) this.log.debug({ deleted: pacing }, 'stale per-chat pacing rows deleted');
      return deleted;
    } catch (error) {
      this.log.warn({ err: errorMessage(error) }, 'cleanup failed');
      return 0;
    }
  }
}
