// Each daemon runs one ticker: it sleeps until the earliest next_run_at of an enabled schedule
// and then takes what is due. A schedule added, resumed or brought forward by another process
// wakes it through the listener (sql/0023's NOTIFY); it also re-reads at least every RECHECK_MS,
// should a notification be lost. No leader: takeDueTicks lets exactly one daemon take each tick.
import { errorMessage, type Logger } from '../log.js';
import type { Pool } from '../db/pool.js';
import { sleep } from '../time.js';
import { nextTickDelayMs, takeDueTicks } from './schedules-store.js';

/** The longest the ticker sleeps before re-reading the schedules. Below cron.ts LATE_GRACE_MS, so a new schedule's first tick is never taken as missed. */
const RECHECK_MS = 30_000;
/** After a failed pass (the database away), the next one is tried this much later. */
const RETRY_MS = 5_000;

export class ScheduleTicker {
  private readonly controller = new AbortController();
  private loop: Promise<void> | null = null;
  private nap = new AbortController();

  constructor(
    private readonly pool: Pool,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.loop ??= this.run();
  }

  /** Re-reads the schedules now (one was added or resumed, here or by another process). */
  wake(): void {
    this.nap.abort();
  }

  async stop(): Promise<void> {
    this.controller.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    const { signal } = this.controller;
    while (!signal.aborted) {
      let waitMs = RETRY_MS;
      try {
        for (const report of await takeDueTicks(this.pool)) {
          this.log.info({ schedule: report.name, ticks: report.ticks.map((t) => t.toISOString()), missedSkipped: report.missed }, 'schedule enqueued its due ticks');
        }
        const delay = await nextTickDelayMs(this.pool);
        waitMs = delay === null ? RECHECK_MS : Math.min(RECHECK_MS, Math.max(0, Math.ceil(delay)));
      } catch (error) {
        if (!signal.aborted) this.log.warn({ err: errorMessage(error) }, 'schedule pass failed; retrying');
      }
      if (this.nap.signal.aborted) this.nap = new AbortController();
      else await sleep(waitMs, AbortSignal.any([signal, this.nap.signal]));
      if (this.nap.signal.aborted) this.nap = new AbortController();
    }
  }
}
