// A broadcast's engagement report reads its whole ledger: 594 ms for 1,000,000 rows (shared 2-core
// machine), too slow to run on every view of its page, which also reloads itself whenever the
// broadcast's status changes. So the dashboard keeps each report for a while, as the Subscribers
// page keeps its counts: a page shows the kept one with its age (counting again in the background
// once it is old), or "counting…" until the first one is ready; the page's live stream says when.
import type { Pool } from '../../db/pool.js';
import { errorMessage, type Logger } from '../../log.js';
import { broadcastReport, type BroadcastReport } from '../../engagement/report.js';
import type { HeavyReads } from './heavy-reads.js';

/** A kept report older than this is counted again (while the older one is shown). */
export const KEEP_REPORT_MS = 30_000;
/** Broadcasts whose reports are kept; the least recently counted is forgotten first. */
const MAX_KEPT = 100;
/** A failed count is shown this long before a view tries again. */
const KEEP_ERROR_MS = 5_000;

export type ReportView =
  | { state: 'ready'; report: BroadcastReport; ageSeconds: number }
  | { state: 'counting' }
  | { state: 'failed'; error: string };

interface Kept {
  report: BroadcastReport | null;
  reportAt: number;
  /** The last count's failure, when it failed. */
  error: string | null;
  errorAt: number;
}

export class KeptReports {
  private readonly kept = new Map<number, Kept>();
  private readonly counting = new Map<number, Promise<void>>();

  constructor(private readonly heavy: HeavyReads, private readonly log: Logger) {}

  /**
   * What the page shows now, never waiting for a count. A report counted while the broadcast had
   * another status describes another phase (an A/B decision, the end), so it is not shown.
   */
  view(pool: Pool, id: number, status: string): ReportView {
    const k = this.kept.get(id);
    const now = Date.now();
    const current = k?.report && k.report.status === status ? k.report : null;
    const age = current ? now - k!.reportAt : Infinity;
    const recentError = k?.error && now - k.errorAt < KEEP_ERROR_MS ? k.error : null;
    if (age >= KEEP_REPORT_MS && !recentError) this.count(pool, id);
    if (current) return { state: 'ready', report: current, ageSeconds: Math.floor(age / 1000) };
    return recentError ? { state: 'failed', error: recentError } : { state: 'counting' };
  }

  /** Whether a page showing "counting…" has something new to show (for the live stream). */
  settled(id: number, status: string): boolean {
    const k = this.kept.get(id);
    return !!k && (k.error !== null || k.report?.status === status);
  }

  private count(pool: Pool, id: number): void {
    if (this.counting.has(id)) return;
    const done = this.heavy.run(pool, `the engagement report of broadcast ${id}`, (c) => broadcastReport(c, id))
      .then((report) => this.keep(id, { report, reportAt: Date.now(), error: null, errorAt: 0 }))
      .catch((error: unknown) => {
        this.log.warn({ broadcastId: id, err: errorMessage(error) }, 'dashboard engagement report failed');
        const before = this.kept.get(id);
        this.keep(id, { report: before?.report ?? null, reportAt: before?.reportAt ?? 0, error: errorMessage(error), errorAt: Date.now() });
      })
      .finally(() => this.counting.delete(id));
    this.counting.set(id, done);
  }

  private keep(id: number, k: Kept): void {
    this.kept.delete(id);
    this.kept.set(id, k);
    if (this.kept.size > MAX_KEPT) this.kept.delete(this.kept.keys().next().value!);
  }
}
