// The dashboard's reads that scan much (a broadcast's engagement report over its ledger, the
// Compose page's audience count with a frequency cap, the bulk action's count) run on the daemon's
// own pool, the one job outcomes are written through: at most a few at a time, each cancelled by
// the server past a statement timeout, so a handful of open tabs cannot starve the workers.
import type { Pool, PoolClient } from '../../db/pool.js';
import { boundedRead } from '../../db/bounded-read.js';
import { HttpError } from '../../errors.js';

/** Heavy reads running at once per dashboard; the pool has concurrency + 4 connections. */
export const HEAVY_READ_LIMIT = 2;
/** Each statement of a heavy read is cancelled past this. */
export const HEAVY_READ_TIMEOUT_MS = 10_000;

export class HeavyReads {
  private running = 0;

  constructor(readonly limit = HEAVY_READ_LIMIT, readonly timeoutMs = HEAVY_READ_TIMEOUT_MS) {}

  /** Runs `read` in a READ ONLY transaction under the timeout; 503 when `limit` are already running. */
  async run<T>(pool: Pool, what: string, read: (client: PoolClient) => Promise<T>): Promise<T> {
    if (this.running >= this.limit) {
      throw new HttpError(503, `${what}: the dashboard is already running ${this.limit} long reads (reports and counts) and runs no more at once, to keep database connections for the workers; try again in a few seconds`, { 'retry-after': '5' });
    }
    this.running++;
    try {
      return await boundedRead(pool, read, this.timeoutMs);
    } catch (error) {
      if ((error as { code?: string }).code === '57014') throw new HttpError(503, `${what} took longer than ${this.timeoutMs / 1000} s and was stopped`);
      throw error;
    } finally {
      this.running--;
    }
  }
}
