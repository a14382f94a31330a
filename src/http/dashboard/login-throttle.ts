// Wrong tokens typed at the login page, counted per client address: after MAX_FAILURES in a
// minute that address is answered 429 (even with the right token) until its minute is over, so a
// token cannot be guessed at the speed of the network. Memory is bounded: at most MAX_ADDRESSES
// are remembered, the oldest forgotten first. Behind a reverse proxy every client shares the
// proxy's address, so a flood of wrong tokens there holds every login back for that minute.
const WINDOW_MS = 60_000;
export const MAX_FAILURES = 10;
const MAX_ADDRESSES = 10_000;

export class LoginThrottle {
  /** address → [start of its minute (epoch ms), wrong tokens in it]; in insertion order, oldest first. */
  private readonly failures = new Map<string, [number, number]>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Seconds until `address` may try again; 0 when it may now. */
  retryAfter(address: string): number {
    const entry = this.failures.get(address);
    if (!entry) return 0;
    const left = entry[0] + WINDOW_MS - this.now();
    if (left <= 0) {
      this.failures.delete(address);
      return 0;
    }
    return entry[1] >= MAX_FAILURES ? Math.ceil(left / 1000) : 0;
  }

  failed(address: string): void {
    const now = this.now();
    const entry = this.failures.get(address);
    if (entry && entry[0] + WINDOW_MS > now) {
      entry[1]++;
      return;
    }
    this.failures.delete(address);
    while (this.failures.size >= MAX_ADDRESSES) this.failures.delete(this.failures.keys().next().value!);
    this.failures.set(address, [now, 1]);
  }

  get size(): number {
    return this.failures.size;
  }
}
