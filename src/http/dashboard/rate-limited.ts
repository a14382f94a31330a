// The 429 answers this daemon's Telegram sends got, for the overview: in the last hour (per minute,
// in a ring of 60) and since the dashboard was created. Counted from the same 'rate-limited' event
// as the broadcast_queue_rate_limited_total metric; another daemon's 429s are in its own count (and
// the pause a 429 sets is shared through the rate limit row, which the overview shows as well).
import type { TelegramView } from '../queue-access.js';

const MINUTE_MS = 60_000;
const MINUTES = 60;

export interface RateLimitedCounts {
  lastHour: number;
  sinceStart: number;
  /** When counting began (this dashboard's creation). */
  since: Date;
  last: Date | null;
  /** The retry_after the 429s asked for, summed over the last hour. */
  pausedSecondsLastHour: number;
}

export class RateLimitedCounter {
  private readonly since: Date;
  private sinceStart = 0;
  private last: Date | null = null;
  /** [minute number, 429s, retry_after seconds] per slot; a slot from an older hour is stale. */
  private readonly minutes: [number, number, number][] = Array.from({ length: MINUTES }, () => [-1, 0, 0]);

  constructor(telegram: TelegramView | null, private readonly now: () => number = Date.now) {
    this.since = new Date(now());
    telegram?.on('rate-limited', (r: { retryAfterMs?: number }) => this.record(r.retryAfterMs ?? 0));
  }

  record(retryAfterMs: number): void {
    const at = this.now();
    const minute = Math.floor(at / MINUTE_MS);
    const slot = this.minutes[minute % MINUTES]!;
    if (slot[0] !== minute) slot.splice(0, 3, minute, 0, 0);
    slot[1]++;
    if (Number.isFinite(retryAfterMs) && retryAfterMs > 0) slot[2] += retryAfterMs / 1000;
    this.sinceStart++;
    this.last = new Date(at);
  }

  counts(): RateLimitedCounts {
    const current = Math.floor(this.now() / MINUTE_MS);
    let lastHour = 0;
    let paused = 0;
    for (const [minute, n, seconds] of this.minutes) {
      if (minute > current - MINUTES) {
        lastHour += n;
        paused += seconds;
      }
    }
    return { lastHour, sinceStart: this.sinceStart, since: this.since, last: this.last, pausedSecondsLastHour: paused };
  }
}
