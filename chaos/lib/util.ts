// Small helpers shared by the chaos scenarios: a seeded random source (so a failing run can be
// repeated with --seed), percentiles, polling a database condition, and formatting.

export { seededRandom } from '../../src/testing/random.js';

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Between min and max (inclusive of min), from the given random source. */
export const between = (random: () => number, min: number, max: number) => min + random() * (max - min);

export function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

/** The p-th percentile (0..100) of the values, nearest-rank; null for none. */
export function percentile(values: number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

/**
 * Re-checks a condition until it holds or the time runs out. The daemons are other processes, so
 * their writes are observed through the database; each check is a query, not a sleep standing in
 * for an event.
 */
export async function until<T>(check: () => Promise<T | undefined | null | false>, timeoutMs: number, what: string, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Like until(), but resolves false on timeout instead of throwing. */
export async function eventually(check: () => Promise<boolean>, timeoutMs: number, everyMs = 200): Promise<boolean> {
  return until(async () => (await check()) || null, timeoutMs, '', everyMs).then(() => true, () => false);
}

export const mb = (bytes: number) => Math.round(bytes / 1024 / 1024);
export const fmtMs = (ms: number | null) => (ms === null ? 'n/a' : ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`);
export const range = (from: number, count: number) => Array.from({ length: count }, (_v, i) => from + i);
