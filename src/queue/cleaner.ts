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

/** Deletes finished jobs older than the retention; returns how many. */
export async function deleteFinishedJobs(pool: Pool, olderThanDays: number): Promise<number> {
  let total = 0;
  for (;;) {
    const { rowCount } = await pool.query(CLEAN_SQL, [olderThanDays]);
    total += rowCount ?? 0;
    if ((rowCount ?? 0) < BATCH) return total;
  }
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
      return deleted;
    } catch (error) {
      this.log.warn({ err: errorMessage(error) }, 'cleanup failed');
      return 0;
    }
  }
}
