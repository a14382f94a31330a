import type { Job } from './claimer.js';
import { LISTEN_CHECK_MS } from './listener.js';

// An adopted job's notification can only be in flight on the connection that LISTENs now, so it
// usually arrives within moments of the adoption. A connection that stalls without closing is
// replaced once its check goes unanswered (LISTEN_CHECK_MS + 15 s, listener.ts), and what was in
// flight on it never arrives; this keeps every adopted run's key for longer than that, counted
// from the run's end, so that a late notification cannot start it a second time.
const ADOPTED_KEPT_MS = 2 * LISTEN_CHECK_MS + 60_000;

/**
 * The runs this daemon holds, so that none starts twice. A run reaches the daemon by a claim's
 * answer, by the insert trigger's notification (sql/0025_idle_slots.sql), or by adoption after the
 * listener reconnected (Scheduler.adoptOrphans), which reads the jobs table and so can also see a
 * run the other two are still delivering, or one whose outcome is being written. A run is known
 * by its job and its claim (started_at): the same job claimed again is a new run.
 */
export class RunRegistry {
  /** Runs accepted and not yet resolved (outcome written, or handed back). */
  private readonly live = new Set<string>();
  /** Runs taken by adoption, with when: their claim's answer or notification may still come. */
  private readonly adopted = new Map<string, number>();
  /** Runs resolved while an adoption was reading: that read may still show them as held. */
  private readonly resolvedDuringAdoption = new Set<string>();
  private adoptionsReading = 0;

  /** The jobs not already known, now held. */
  accept(jobs: Job[]): Job[] {
    if (this.adopted.size) this.forgetOldAdoptions();
    const fresh: Job[] = [];
    for (const job of jobs) {
      const key = keyOf(job);
      if (this.live.has(key) || this.adopted.has(key) || this.resolvedDuringAdoption.has(key)) continue;
      this.live.add(key);
      fresh.push(job);
    }
    return fresh;
  }

  resolve(job: Job): void {
    const key = keyOf(job);
    if (!this.live.delete(key)) return;
    if (this.adopted.has(key)) this.adopted.set(key, Date.now());
    if (this.adoptionsReading) this.resolvedDuringAdoption.add(key);
  }

  /** Call before reading the held jobs; pass what the read returned to endAdoption. */
  beginAdoption(): void {
    this.adoptionsReading++;
  }

  /** The read's jobs that nothing else delivered, now held. */
  endAdoption(read: Job[] | null): Job[] {
    const fresh = read ? this.accept(read) : [];
    const now = Date.now();
    for (const job of fresh) this.adopted.set(keyOf(job), now);
    if (--this.adoptionsReading === 0) this.resolvedDuringAdoption.clear();
    return fresh;
  }

  private forgetOldAdoptions(): void {
    const cutoff = Date.now() - ADOPTED_KEPT_MS;
    for (const [key, at] of this.adopted) if (at < cutoff && !this.live.has(key)) this.adopted.delete(key);
  }
}

const keyOf = (job: Job) => `${job.jobId}@${job.claimedAt}`;
