// Each daemon runs one ticker: it sleeps until the earliest next_run_at of an enabled schedule
// and then takes what is due. A schedule added, resumed or brought forward by another process
// wakes it through the listener (sql/0023's NOTIFY). Should a notification be lost, the sweep
// (queue/rescuer.ts) reads the earliest tick in its own statement and passes it on (noteNextTick),
// so an idle ticker sends nothing of its own; without sweeps (a long sweepMs) it re-reads itself.
// No leader: takeDueTicks lets exactly one daemon take each tick.
import { EventEmitter } from 'node:events';
import { errorMessage, type Logger } from '../log.js';
import type { Pool } from '../db/pool.js';
import { sleep } from '../time.js';
import { nextTickDelayMs, takeDueTicks } from './schedules-store.js';

/**
 * With no sweep report or pass of its own for this long, the ticker re-reads the schedules. Longer
 * than the default 30 s sweep, so that a sweep a few seconds late does not cost a read, and below
 * cron.ts LATE_GRACE_MS, so a tick whose notification was lost is late but never taken as missed.
 */
const STALE_AFTER_MS = 45_000;
/** After a failed pass (the database away), the next one is tried this much later. */
const RETRY_MS = 5_000;

/** Emits 'passed' after each read of the schedules of its own (passes counts them). */
export class ScheduleTicker extends EventEmitter {
  private readonly controller = new AbortController();
  private loop: Promise<void> | null = null;
  private nap = new AbortController();
  /** A pass is owed: at start, and after wake(). */
  private passOwed = true;
  /** When (this clock) the earliest known tick is due; null while no schedule is enabled. */
  private nextTickAt: number | null = null;
  /** When the view of the schedules was last refreshed, by a pass or a sweep report. */
  private knownAt = -Infinity;
  /** The earliest tick a sweep reported while a pass was reading: the pass must not overwrite it. */
  private reportedDuringPass: number | null = null;
  private passing = false;
  passes = 0;

  constructor(
    private readonly pool: Pool,
    private readonly log: Logger,
  ) {
    super();
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Re-reads the schedules now (one was added or resumed, here or by another process). */
  wake(): void {
    this.passOwed = true;
    this.nap.abort();
  }

  /**
   * What a sweep read: milliseconds until the earliest tick of an enabled schedule (0 or less:
   * due), or null when none is enabled. It may only bring the next pass forward: the sweep's
   * snapshot can predate a schedule this ticker has already read, and an extra pass costs a read
   * where a postponed one could miss a tick.
   */
  noteNextTick(delayMs: number | null): void {
    const now = Date.now();
    this.knownAt = now;
    if (delayMs === null) return;
    const at = now + Math.max(0, delayMs);
    if (this.passing) this.reportedDuringPass = Math.min(this.reportedDuringPass ?? Infinity, at);
    if (this.nextTickAt !== null && this.nextTickAt <= at) return;
    this.nextTickAt = at;
    this.nap.abort();
  }

  async stop(): Promise<void> {
    this.controller.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    const { signal } = this.controller;
    while (!signal.aborted) {
      const now = Date.now();
      if (this.passOwed || (this.nextTickAt !== null && this.nextTickAt <= now) || now - this.knownAt >= STALE_AFTER_MS) await this.pass(signal);
      if (this.nap.signal.aborted) {
        this.nap = new AbortController();
        continue;
      }
      const wakeAt = Math.min(this.nextTickAt ?? Infinity, this.knownAt + STALE_AFTER_MS);
      await sleep(wakeAt - Date.now(), AbortSignal.any([signal, this.nap.signal]));
      if (this.nap.signal.aborted) this.nap = new AbortController();
    }
  }

  private async pass(signal: AbortSignal): Promise<void> {
    this.passOwed = false;
    this.passing = true;
    this.reportedDuringPass = null;
    try {
      for (const report of await takeDueTicks(this.pool)) {
        this.log.info({ schedule: report.name, ticks: report.ticks.map((t) => t.toISOString()), missedSkipped: report.missed }, 'schedule enqueued its due ticks');
      }
      const delay = await nextTickDelayMs(this.pool);
      const now = Date.now();
      this.knownAt = now;
      const read = delay === null ? Infinity : now + Math.max(0, Math.ceil(delay));
      const earliest = Math.min(read, this.reportedDuringPass ?? Infinity);
      this.nextTickAt = earliest === Infinity ? null : earliest;
    } catch (error) {
      if (!signal.aborted) this.log.warn({ err: errorMessage(error) }, 'schedule pass failed; retrying');
      // The view stays unknown, but the retry comes before it would count as stale.
      this.knownAt = Date.now();
      this.nextTickAt = this.knownAt + RETRY_MS;
    } finally {
      this.passing = false;
      this.passes++;
      this.emit('passed');
    }
  }
}
