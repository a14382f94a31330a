import { EventEmitter } from 'node:events';
import { databaseRetryWaitMs } from '../db/pool.js';
import { errorMessage, type Logger } from '../log.js';
import { cappedBackoffMs } from '../time.js';
import type { Claimer, Job } from './claimer.js';
import type { WorkerPool } from './worker-pool.js';
import type { IdleSlots } from './idle-slots.js';
import { RunRegistry } from './run-registry.js';

export interface PrefetchOptions {
  /**
   * Jobs claimed beyond the free slots, started as slots free without a round trip. 0: off.
   * 'auto': as many as the slots finish in AUTO_HORIZON_MS at the jobs' recent duration.
   */
  size: number | 'auto';
  /** A prefetched job waiting longer than this for a slot is handed back. */
  maxWaitMs: number;
  handBack(jobs: Job[]): Promise<void>;
}

export type WakeReason = 'notification' | 'timer' | 'sweep' | 'slot' | 'connected' | 'start' | 'manual';

// Timers longer than this are re-armed in steps (setTimeout overflows past ~24.8 days).
const MAX_TIMER_MS = 2 ** 31 - 1;

// With prefetch, a second claim may refill the buffer while the first is still on the wire: one
// claim at a time left the slots idle for a round trip every buffer's worth of short jobs.
const MAX_CLAIMS_IN_FLIGHT = 2;

// A due job that claim after claim skips (its row locked elsewhere) is re-checked this often at most.
const MAX_DUE_RECHECK_MS = 1_000;

// prefetch 'auto': the buffer holds what the slots finish in this long at the jobs' recent
// duration, so short jobs never wait out a claim's round trip (about 1 ms, several on a busy
// machine) while a prefetched job waits for its slot no longer than this. Jobs of a second or
// more (a broadcast runs for minutes) get none: nothing is held back from other daemons.
const AUTO_HORIZON_MS = 10;
// The largest automatic buffer: the best fixed setting measured for 20,000 no-op jobs.
const AUTO_MAX = 500;
// Weight of the latest job in the running duration: about the last 20 jobs count.
const DURATION_WEIGHT = 0.05;

/**
 * The one place that decides to claim. Notifications, the run_at timer, the fallback sweep (the
 * rescuer reports due jobs), a freed slot and a listener (re)connect all call wake(); wakes that arrive while claims are in
 * flight fold into one more claim after the last of them. With prefetch, the buffer is topped up
 * as soon as it falls to half, from the finishing job itself, so short jobs never wait for the
 * event loop to go idle before the next claim leaves. Emits 'claimed' (count) and 'claim-failed' (never 'error', which would throw without a listener).
 */
export class Scheduler extends EventEmitter {
  private readonly claims = new Set<Promise<void>>();
  /** Jobs asked for by the claims in flight. */
  private requested = 0;
  private wakeAgain = false;
  private scheduledWake = false;
  /** True while the last claim filled every free slot, so more due jobs may be waiting. */
  private backlog = false;
  private stopped = true;
  private paused = false;
  private runAtTimer: NodeJS.Timeout | undefined;
  private runAtDue = Infinity;
  /** Short claims in a row after which a job was still due (see armForNextRun). */
  private dueButUnclaimed = 0;
  /** Claims that failed in a row: the next one is retried after a backoff. */
  private failedClaims = 0;
  /**
   * A claim failed since the last read-back: it may have committed with its answer lost (the
   * connection died after the commit), leaving jobs 'processing' for this live daemon that the
   * rescuer will not touch. The next claim that succeeds reads them back (adoptOrphans).
   */
  private claimUnanswered = false;
  /** Claimed jobs waiting for a free slot (prefetch), oldest first, with their claim time. */
  private readonly buffer: { job: Job; claimedAt: number }[] = [];
  private bufferTimer: NodeJS.Timeout | undefined;
  /** Recent handler duration (ms), weighted towards the latest jobs; null before the first. */
  private recentDurationMs: number | null = null;
  /** Every run this daemon holds, however it came: none may start twice. */
  private readonly runs = new RunRegistry();

  constructor(
    private readonly claimer: Claimer,
    private readonly pool: WorkerPool,
    private readonly log: Logger,
    private readonly prefetch: PrefetchOptions = { size: 0, maxWaitMs: 1_000, handBack: async () => undefined },
    private readonly idle?: IdleSlots,
  ) {
    super();
    // A finished handler frees its slot with how long it ran; a written outcome frees one without.
    pool.on('slot-freed', (ranMs?: number) => {
      if (ranMs !== undefined) this.recentDurationMs = this.recentDurationMs === null ? ranMs : this.recentDurationMs + DURATION_WEIGHT * (ranMs - this.recentDurationMs);
      this.dispatch();
      if (!this.backlog) return this.advertiseIfIdle();
      const size = this.prefetchSize;
      if (size === 0) this.wake('slot');
      else if (this.buffer.length + this.requested <= size / 2) this.claimNow(true);
    });
    // An outcome that could not be written leaves its run held: its row still says 'processing'
    // and ours, and adoption must not start it again.
    pool.on('job:done', (event: { job: Job; recorded: boolean }) => {
      if (event.recorded) this.runs.resolve(event.job);
    });
  }

  /** Jobs to hold beyond the free slots now. */
  get prefetchSize(): number {
    if (this.prefetch.size !== 'auto') return this.prefetch.size;
    // Before any job finished nothing is known: the first claim takes what the slots can run.
    if (this.recentDurationMs === null) return 0;
    const perSlot = AUTO_HORIZON_MS / Math.max(this.recentDurationMs, 0.001);
    return Math.min(AUTO_MAX, Math.floor(this.pool.concurrency * perSlot));
  }

  start(): void {
    this.stopped = false;
    if (this.prefetch.size === 'auto' || this.prefetch.size > 0) {
      this.bufferTimer = setInterval(() => void this.handBackStale(), this.prefetch.maxWaitMs);
      this.bufferTimer.unref();
    }
    this.wake('start');
  }

  /** Stops claiming; resolves once the claims in flight are done and prefetched jobs are handed back. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.idle?.withdraw().catch((error) => this.log.warn({ err: errorMessage(error) }, 'withdrawing idle slots failed'));
    clearTimeout(this.runAtTimer);
    clearInterval(this.bufferTimer);
    this.runAtDue = Infinity;
    await this.claimsSettled();
    // Unwritten hand-backs stay 'processing' and are rescued; stop() must still finish.
    await this.handBack(this.buffer.splice(0).map((b) => b.job), 'prefetched');
  }

  private async handBack(jobs: Job[], what: string): Promise<void> {
    if (jobs.length === 0) return;
    await this.prefetch.handBack(jobs).catch((error) => this.log.warn({ err: errorMessage(error) }, `handing back ${what} jobs failed`));
    for (const job of jobs) this.runs.resolve(job);
  }

  /** Starts buffered jobs in free slots; no database round trip. */
  private dispatch(): void {
    if (this.paused) return;
    while (this.buffer.length && this.pool.free > 0) this.pool.run(this.buffer.shift()!.job);
  }

  /**
   * A prefetched job that found no free slot for maxWaitMs goes back to the queue, where an idle
   * daemon can take it: prefetch must speed up short jobs without hoarding long ones.
   */
  private async handBackStale(): Promise<void> {
    const cutoff = Date.now() - this.prefetch.maxWaitMs;
    let stale = 0;
    while (stale < this.buffer.length && this.buffer[stale]!.claimedAt <= cutoff) stale++;
    if (stale === 0) return;
    await this.handBack(this.buffer.splice(0, stale).map((b) => b.job), 'prefetched');
  }

  /**
   * Stops claiming (a halted bot token); resolves once the claims in flight are done and what they
   * claimed for no slot is handed back. resume() claims at once.
   */
  async pause(): Promise<void> {
    this.paused = true;
    await this.idle?.withdraw().catch((error) => this.log.warn({ err: errorMessage(error) }, 'withdrawing idle slots failed'));
    await this.claimsSettled();
    // A claim that was in flight when the pause began delivered jobs no slot may start now: held
    // here they would stay 'processing' for the whole pause, so they go back to the queue.
    await this.handBack(this.buffer.splice(0).map((b) => b.job), 'claimed');
  }

  private async claimsSettled(): Promise<void> {
    while (this.claims.size) await Promise.all([...this.claims]);
  }

  resume(): void {
    this.paused = false;
    this.wake('manual');
  }

  get isPaused(): boolean {
    return this.paused;
  }

  wake(reason: WakeReason): void {
    if (this.stopped || this.paused) return;
    // A notification means new due work even if no slot is free now: claim when one frees.
    if (reason !== 'slot') this.backlog = true;
    // A claim already on the wire may have been planned before this job committed.
    if (this.claims.size) this.wakeAgain = true;
    if (this.scheduledWake) return;
    // Coalesce the wakes of one event-loop turn (a burst of finished jobs) into one claim.
    this.scheduledWake = true;
    setImmediate(() => {
      this.scheduledWake = false;
      this.claimNow();
    });
  }

  /** Arms the timer for a job known to become due in delayMs (a retry this daemon just wrote). */
  noteFutureRun(delayMs: number): void {
    this.armRunAtTimer(delayMs);
  }

  /**
   * Starts a claim for the free slots and the buffer's free room, unless enough is already asked
   * for. `turningOver`: called from a finishing job, so slots are busy only for a moment and the
   * buffer may be refilled although no slot is free right now.
   */
  private claimNow(turningOver = false): void {
    if (this.stopped || this.paused) return;
    this.dispatch();
    if (this.claims.size >= MAX_CLAIMS_IN_FLIGHT) return;
    if (this.pool.free <= 0 && !turningOver) return;
    const want = this.pool.free + Math.max(0, this.prefetchSize - this.buffer.length) - this.requested;
    if (want <= 0) return;
    const claim = this.claim(want).finally(() => {
      this.claims.delete(claim);
      if (this.claims.size === 0 && this.wakeAgain) {
        // The wake may have been for a job no claim has seen yet: if no slot is free now, the
        // next freed slot must claim, whatever the claims in flight reported.
        this.wakeAgain = false;
        this.backlog = true;
        this.claimNow();
      }
    });
    this.claims.add(claim);
  }

  /** Jobs the insert trigger handed to this daemon's advertised slots: already claimed. */
  assigned(handed: Job[]): void {
    this.idle?.taken(handed.length);
    this.take(this.runs.accept(handed));
  }

  /** Held jobs, claimed or handed over, start here (or go back, if claiming has stopped). */
  private take(jobs: Job[]): void {
    if (jobs.length === 0) return;
    if (this.stopped || this.paused) {
      void this.handBack(jobs, 'claimed');
      return;
    }
    const claimedAt = Date.now();
    for (const job of jobs) this.buffer.push({ job, claimedAt });
    this.dispatch();
    this.emit('claimed', jobs.length);
  }

  /**
   * Jobs the database shows as this daemon's that no claim answer or notification delivered: after
   * the listener reconnects, one handed over while it was away (its notification is lost); after a
   * failed claim, the jobs of a claim that committed with its answer lost. Either would stay
   * 'processing' under this live daemon, so they are read back and those nothing else delivered
   * are run. RunRegistry keeps a claim or notification still on its way from starting one twice.
   */
  async adoptOrphans(after: 'reconnect' | 'failed-claim' = 'reconnect'): Promise<void> {
    // Only a daemon that offered slots can have been handed jobs while its listener was away.
    if (this.stopped || (after === 'reconnect' && !this.idle?.everOffered)) return;
    this.runs.beginAdoption();
    let read: Job[] | null = null;
    try {
      read = await this.claimer.held();
    } catch (error) {
      // The next reconnect, or the rescue once this daemon is gone, takes them back.
      this.log.warn({ err: errorMessage(error) }, 'reading back held jobs failed');
    }
    const orphans = this.runs.endAdoption(read);
    if (orphans.length) {
      const how = after === 'reconnect' ? 'handed over while the listener was away' : 'claimed by a statement whose answer was lost';
      this.log.info({ jobs: orphans.map((j) => j.jobId) }, `running jobs ${how}`);
    }
    this.take(orphans);
  }

  /** Nothing more is due: offer the free slots to the insert trigger. */
  private advertiseIfIdle(claimsInFlight = 0): void {
    if (!this.idle || this.stopped || this.paused || this.backlog || this.claims.size > claimsInFlight || this.buffer.length) return;
    if (this.pool.free <= this.idle.advertised) return;
    void this.idle.advertise(this.pool.free).catch((error) => this.log.warn({ err: errorMessage(error) }, 'advertising idle slots failed'));
  }

  private async claim(want: number): Promise<void> {
    this.requested += want;
    try {
      // The claim withdraws the offer (CLAIM_SQL); one still being written would outlive it.
      if (this.idle) {
        await this.idle.settled();
        this.idle.withdrawnByClaim();
      }
      const jobs = await this.claimer.claim(want);
      this.failedClaims = 0;
      // Alone: a claim still in flight could answer after the read-back took its jobs.
      if (this.claimUnanswered && this.claims.size <= 1) {
        this.claimUnanswered = false;
        void this.adoptOrphans('failed-claim');
      }
      const claimedAt = Date.now();
      for (const job of this.runs.accept(jobs)) this.buffer.push({ job, claimedAt });
      // Claimed during shutdown too: the pool runs what fits, stop() hands back the rest.
      this.dispatch();
      if (this.stopped) return;
      if (jobs.length) {
        this.dueButUnclaimed = 0;
        this.emit('claimed', jobs.length);
      }
      // A short claim means nothing more is due, unless another claim was in flight: its locks
      // (SKIP LOCKED) may have hidden due rows from this one.
      this.backlog = jobs.length === want || this.claims.size > 1;
      if (!this.backlog) {
        await this.armForNextRun();
        // This claim is the only one in flight and no wake came meanwhile.
        if (!this.wakeAgain) this.advertiseIfIdle(1);
      }
    } catch (error) {
      // Retried here, not left to the listener's reconnect or the sweep: the listener may stay
      // connected while the claim fails (a pooled connection cut, a server restarted between the
      // two), and then the work that woke us would wait a whole sweep, or for ever with none.
      this.failedClaims++;
      this.claimUnanswered = true;
      const retryMs = databaseRetryWaitMs(this.failedClaims);
      if (this.failedClaims === 1 || this.failedClaims % 60 === 0) this.log.warn({ err: errorMessage(error), failures: this.failedClaims, retryMs }, 'claim failed; retrying');
      this.emit('claim-failed', error);
      this.armRunAtTimer(retryMs);
    } finally {
      this.requested -= want;
    }
  }

  private async armForNextRun(): Promise<void> {
    const delayMs = await this.claimer.nextRunDelayMs();
    if (delayMs === null || delayMs > 0) {
      this.dueButUnclaimed = 0;
      if (delayMs !== null) this.armRunAtTimer(delayMs);
      return;
    }
    // A job is due that this claim did not take: it became due after the claim's snapshot, or
    // another claimer held its row. Claim again at once; if it keeps showing up (a row locked by
    // a long transaction elsewhere), back off to at most a second instead of spinning.
    this.dueButUnclaimed++;
    this.armRunAtTimer(this.dueButUnclaimed === 1 ? 0 : cappedBackoffMs(this.dueButUnclaimed - 2, 10, MAX_DUE_RECHECK_MS));
  }

  private armRunAtTimer(delayMs: number): void {
    if (this.stopped) return;
    const due = Date.now() + Math.max(0, delayMs);
    // Keep only the earliest; a later one will be found again after that claim.
    if (due >= this.runAtDue && this.runAtTimer) return;
    clearTimeout(this.runAtTimer);
    this.runAtDue = due;
    this.runAtTimer = setTimeout(() => {
      this.runAtTimer = undefined;
      this.runAtDue = Infinity;
      if (due - Date.now() > 5) this.armRunAtTimer(due - Date.now());
      else this.wake('timer');
    }, Math.min(MAX_TIMER_MS, Math.max(0, delayMs) + 1));
    this.runAtTimer.unref();
  }
}
