export interface BackoffPolicy {
  /** Wait before the second attempt. */
  baseMs: number;
  /** No wait is longer than this. */
  maxMs: number;
}

/**
 * Milliseconds to wait before `nextAttempt` (2, 3, …): base × 2^(n−2), so with the default 60 s
 * base: 60, 120, 240, 480 s … capped. ±10 % jitter keeps a burst of failures from retrying in lockstep.
 */
export function retryDelayMs(nextAttempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const exponent = Math.max(0, nextAttempt - 2);
  const raw = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(exponent, 40));
  const jittered = raw * (0.9 + 0.2 * random());
  return Math.round(Math.min(policy.maxMs, jittered));
}
