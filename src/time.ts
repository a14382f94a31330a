// Waiting and backing off, written once for all of src/.
import { setTimeout as timer } from 'node:timers/promises';

/**
 * How a component waits. Resolves (never rejects) when the time has passed or the signal aborted;
 * callers look at the signal. The send path (RateLimiter, BroadcastQueueOptions.sleep) takes one
 * as a seam on purpose: tests make every wait 100–500 ms late, which is what a busy machine does to
 * timers.
 */
export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;

/**
 * Resolves after `ms` (at once for zero or less), or as soon as `signal` aborts: it never rejects,
 * so a caller that must act on the abort checks the signal afterwards. With `unref`, the timer does
 * not keep the process alive.
 */
export function sleep(ms: number, signal?: AbortSignal, options: { unref?: boolean } = {}): Promise<void> {
  return timer(Math.max(0, ms), undefined, { signal, ref: !options.unref }).then(
    () => undefined,
    () => undefined,
  );
}

/** baseMs × 2^step (step 0: baseMs), never more than maxMs. */
export function cappedBackoffMs(step: number, baseMs: number, maxMs: number): number {
  // 2^40 already passes any cap in use; a larger exponent would only overflow to Infinity.
  return Math.min(maxMs, baseMs * 2 ** Math.min(Math.max(0, step), 40));
}

export interface BackoffPolicy {
  /** Wait before the second attempt. */
  baseMs: number;
  /** No wait is longer than this. */
  maxMs: number;
}

/**
 * A failed job's wait before `nextAttempt` (2, 3, …): base × 2^(n−2), so with the default 60 s
 * base: 60, 120, 240, 480 s … capped. ±10 % jitter keeps a burst of failures from retrying in lockstep.
 */
export function retryDelayMs(nextAttempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const raw = cappedBackoffMs(nextAttempt - 2, policy.baseMs, policy.maxMs);
  const jittered = raw * (0.9 + 0.2 * random());
  return Math.round(Math.min(policy.maxMs, jittered));
}
