// Medians, spreads and the ratio wording used in the table.

/** CLOCK_MONOTONIC (uv_hrtime), shared by every process on the machine, in milliseconds. */
export const monoMs = (): number => Number(process.hrtime.bigint()) / 1e6;

export interface Summary {
  median: number;
  min: number;
  max: number;
  runs: number;
}

/** Nearest-rank percentile of unsorted values; Infinity stands for "never happened in time". */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export function summarize(values: number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length / 2;
  const median = sorted.length % 2 ? sorted[Math.floor(mid)]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, runs: sorted.length };
}

/** 3 significant digits, with thousands separators for big numbers; ∞ as "never". */
export function num(value: number): string {
  if (!Number.isFinite(value)) return Number.isNaN(value) ? 'n/a' : 'never';
  if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString('en-US');
  return Number(value.toPrecision(3)).toString();
}

export function cell(s: Summary, unit = ''): string {
  if (!s || s.runs === 0) return 'n/a';
  const spread = s.runs > 1 && s.min !== s.max ? ` (${num(s.min)}–${num(s.max)})` : '';
  return `${num(s.median)}${unit}${spread}`;
}

/**
 * How ours compares with a peer on one metric, from the medians: "2.1× faster" / "1.3× slower"
 * for speed, or with other words ("fewer", "less") for costs.
 */
export function ratio(ours: number, theirs: number, lowerIsBetter: boolean, words: [string, string] = ['faster', 'slower']): string {
  if (!Number.isFinite(ours) || !Number.isFinite(theirs) || ours < 0 || theirs < 0) {
    if (!Number.isFinite(theirs) && Number.isFinite(ours)) return lowerIsBetter ? `ours ${words[0]}` : `ours ${words[1]}`;
    return '';
  }
  if (ours === theirs) return 'same';
  if (ours === 0 || theirs === 0) {
    const oursBetter = lowerIsBetter ? ours < theirs : ours > theirs;
    return `ours ${oursBetter ? words[0] : words[1]} (${num(ours)} vs ${num(theirs)})`;
  }
  const better = lowerIsBetter ? theirs / ours : ours / theirs;
  const factor = (x: number) => (x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : Math.round(x).toLocaleString('en-US'));
  return better >= 1 ? `${factor(better)}× ${words[0]}` : `${factor(1 / better)}× ${words[1]}`;
}
