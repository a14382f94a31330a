import { EventEmitter } from 'node:events';
import { errorMessage, type Logger } from '../log.js';
import type { Claimer } from './claimer.js';
import type { WorkerPool } from './worker-pool.js';

export type WakeReason = 'notification' | 'timer' | 'sweep' | 'slot' | 'connected' | 'start' | 'manual';

// Timers longer than this are re-armed in steps (setTimeout overflows past ~24.8 days).
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The one place that decides to claim. Notifications, the run_at timer, the fallback sweep (the
 * rescuer reports due jobs), a freed slot and a listener (re)connect all call wake(); wakes that arrive while a claim is in
 * flight fold into one more claim after it. Emits 'claimed' (count) and 'claim-failed' (never 'error', which would throw without a listener).
 */
export class Scheduler extends EventEmitter {
  private claiming = false;
  private wakeAgain = false;
  private scheduledWake = false;
  /** True while the last claim filled every free slot, so more due jobs may be waiting. */
  private backlog = false;
  private stopped = true;
  private paused = false;
  private runAtTimer: NodeJS.Timeout | undefined;
  private runAtDue = Infinity;
  private inFlight: Promise<void> | undefined;

  constructor(
    private readonly claimer: Claimer,
    private readonly pool: WorkerPool,
    private readonly log: Logger,
  ) {
    super();
    pool.on('slot-freed', () => {
      if (this.backlog) this.wake('slot');
    });
  }

  start(): void {
    this.stopped = false;
    this.wake('start');
  }

  /** Stops claiming; resolves once a claim in flight has handed its jobs to the pool. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.runAtTimer);
    this.runAtDue = Infinity;
    await this.inFlight;
  }

  /** Stops claiming (a halted bot token); resolves once a claim in flight is done. resume() claims at once. */
  async pause(): Promise<void> {
    this.paused = true;
    await this.inFlight;
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
    if (this.claiming) {
      this.wakeAgain = true;
      return;
    }
    if (this.scheduledWake) return;
    // Coalesce the wakes of one event-loop turn (a burst of finished jobs) into one claim.
    this.scheduledWake = true;
    setImmediate(() => {
      this.scheduledWake = false;
      this.inFlight = this.claimLoop();
    });
  }

  /** Arms the timer for a job known to become due in delayMs (a retry this daemon just wrote). */
  noteFutureRun(delayMs: number): void {
    this.armRunAtTimer(delayMs);
  }

  private async claimLoop(): Promise<void> {
    if (this.claiming) return;
    this.claiming = true;
    try {
      do {
        this.wakeAgain = false;
        if (this.stopped || this.paused) return;
        const free = this.pool.free;
        if (free <= 0) return;
        const jobs = await this.claimer.claim(free);
        if (this.stopped) {
          // Claimed during shutdown: let the pool run them; stop() callers drain the pool.
          for (const job of jobs) this.pool.run(job);
          return;
        }
        for (const job of jobs) this.pool.run(job);
        if (jobs.length) this.emit('claimed', jobs.length);
        this.backlog = jobs.length === free;
        if (!this.backlog) await this.armForNextRun();
      } while (this.wakeAgain && this.pool.free > 0);
    } catch (error) {
      // The database is away; the listener's reconnect or the sweep will wake us again.
      this.log.warn({ err: errorMessage(error) }, 'claim failed');
      this.emit('claim-failed', error);
    } finally {
      this.claiming = false;
    }
  }

  private async armForNextRun(): Promise<void> {
    const delayMs = await this.claimer.nextRunDelayMs();
    if (delayMs !== null) this.armRunAtTimer(delayMs);
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
