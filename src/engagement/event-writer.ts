// Clicks arrive in storms right after a broadcast (10,000 in a minute is ordinary), and the redirect
// must answer at once: each click is queued in memory and written with the others in one INSERT
// every flushMs. A crash loses at most the clicks of the last flush interval.
import type { Pool } from '../db/pool.js';
import { errorMessage, type Logger } from '../log.js';
import { insertEvents, type EngagementEvent } from './store.js';

/** Events written in one statement at most, and the size that starts a flush before the timer. */
const BATCH = 2_000;
/** Kept across failed writes before the oldest are dropped (and said so). */
const MAX_RETAINED = 100_000;

export class EventWriter {
  private queued: EngagementEvent[] = [];
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | null = null;

  constructor(
    private readonly pool: () => Promise<Pool>,
    private readonly flushMs: number,
    private readonly log: Logger,
  ) {}

  add(event: EngagementEvent): void {
    this.queued.push(event);
    if (this.queued.length >= BATCH) void this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), this.flushMs);
      this.timer.unref();
    }
  }

  /** Writes everything queued so far; resolves when written (or the failure is logged and kept). */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    while (this.writing) await this.writing;
    if (this.queued.length === 0) return;
    this.writing = this.write().finally(() => { this.writing = null; });
    await this.writing;
    if (this.queued.length && !this.timer) {
      this.timer = setTimeout(() => void this.flush(), this.flushMs);
      this.timer.unref();
    }
  }

  private async write(): Promise<void> {
    const events = this.queued.splice(0, BATCH);
    try {
      await insertEvents(await this.pool(), events);
    } catch (error) {
      this.queued.unshift(...events);
      const dropped = Math.max(0, this.queued.length - MAX_RETAINED);
      if (dropped) this.queued.splice(0, dropped);
      this.log.warn({ err: errorMessage(error), events: this.queued.length, dropped }, 'engagement events not written; retrying with the next flush');
    }
  }
}
