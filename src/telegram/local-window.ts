/**
 * The local guard's window: a little over a second, so that sends this process starts late (a GC
 * pause, a busy event loop) are spread out again instead of leaving in a burst. Evenly spaced
 * sends start 1060 ms apart per `rate` of them, so in steady state the guard never binds.
 */
const LOCAL_WINDOW_MS = 1_020;

/** The sends this process started lately: a sliding window that keeps it from bunching late sends together. */
export class LocalWindow {
  private readonly recentStarts: number[] = [];

  /** When this process may start its next send: once fewer than `rate` started in the last LOCAL_WINDOW_MS. */
  localWindowStart(ratePerSecond: number): number {
    const limit = Math.max(1, Math.floor(ratePerSecond));
    return this.recentStarts.length >= limit ? this.recentStarts[this.recentStarts.length - limit]! + LOCAL_WINDOW_MS : 0;
  }

  recordStart(at: number): void {
    this.recentStarts.push(at);
    if (this.recentStarts.length > 2_000) this.recentStarts.splice(0, this.recentStarts.length - 1_000);
  }
}
