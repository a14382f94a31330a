import { EventEmitter, setMaxListeners } from 'node:events';
import { HaltError, PermanentError, SnoozeError } from '../errors.js';
import { errorMessage, type Logger } from '../log.js';
import { retryDelayMs, type BackoffPolicy } from './backoff.js';
import { isDatabaseUnavailable } from '../db/pool.js';
import type { Job } from './claimer.js';
import type { Outcome, Recorder } from './recorder.js';

export interface HandlerContext {
  /** Aborts when the daemon shuts down past its timeout, or loses the job to the rescuer. */
  signal: AbortSignal;
  /**
   * Aborts as soon as shutdown begins. A long handler (a broadcast) should checkpoint and throw
   * a SnoozeError(0) so that the job resumes elsewhere without waiting for the timeout.
   */
  stopping: AbortSignal;
  log: Logger;
}

export type JobHandler = (job: Job<any>, ctx: HandlerContext) => Promise<unknown> | unknown;

export interface JobEvent {
  job: Job;
  outcome: Outcome;
  /** False when the outcome was discarded because the job had been rescued meanwhile. */
  recorded: boolean;
  durationMs: number;
}

/** A job interrupted by a database outage tries again after this, without spending an attempt. */
const DATABASE_RETRY_MS = 5_000;

/** Outcomes that may wait for their batched write while their slots already run new jobs. */
const MAX_UNRECORDED = 1_000;

// A halted job type (say, a revoked bot token) is retried this often until a person fixes it.
const HALT_RECHECK_MS = 60_000;

/**
 * Runs claimed jobs in a fixed number of slots and turns what each handler did into an Outcome.
 * Events: 'job:start' (job), 'job:done' (JobEvent), 'slot-freed', 'halt' ({ jobType, reason }).
 */
export class WorkerPool extends EventEmitter {
  private readonly running = new Map<number, { job: Job; controller: AbortController; done: Promise<void> }>();
  private readonly stopping = new AbortController();
  private readonly recording = new Set<Promise<void>>();

  constructor(
    private readonly capacity: number,
    private readonly handlers: Record<string, JobHandler>,
    private readonly recorder: Recorder,
    private readonly backoff: BackoffPolicy,
    private readonly log: Logger,
  ) {
    super();
    // Every running job's handler may listen to the shared shutdown signal.
    setMaxListeners(0, this.stopping.signal);
  }

  /**
   * Slots free for new claims. A finished job frees its slot before its outcome is written (the
   * recorder batches writes), but no more than MAX_UNRECORDED outcomes may wait: past that, new
   * work waits for the database instead of piling up in memory.
   */
  get free(): number {
    return this.capacity - this.running.size - Math.max(0, this.recording.size - MAX_UNRECORDED);
  }

  get size(): number {
    return this.running.size;
  }

  runningJobs(): Job[] {
    return [...this.running.values()].map((r) => r.job);
  }

  run(job: Job): void {
    const controller = new AbortController();
    // A broadcast attaches one listener per call in flight (up to a few hundred) to its signal.
    setMaxListeners(0, controller.signal);
    const started = performance.now();
    const log = this.log.child({ jobId: job.jobId, jobType: job.jobType, attempt: job.attempt });
    this.emit('job:start', job);
    const done = this.outcomeOf(job, controller, log).then((outcome) => {
      this.running.delete(job.jobId);
      const recording = this.record(job, outcome, started, log).finally(() => {
        this.recording.delete(recording);
        this.emit('slot-freed');
      });
      this.recording.add(recording);
      this.emit('slot-freed');
    });
    this.running.set(job.jobId, { job, controller, done });
  }

  /** Waits for running jobs up to timeoutMs, then aborts the rest; then waits for every write. */
  async drain(timeoutMs: number): Promise<void> {
    this.stopping.abort(new Error('daemon shutting down'));
    const all = () => Promise.all([...this.running.values()].map((r) => r.done));
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
    const first = await Promise.race([all().then(() => 'done' as const), timedOut]);
    clearTimeout(timer);
    if (first === 'timeout') {
      this.log.warn({ jobs: [...this.running.keys()] }, 'shutdown timeout reached; aborting running jobs');
      for (const r of this.running.values()) r.controller.abort(new Error('daemon shutting down'));
      await all();
    }
    await Promise.all([...this.recording]);
  }

  /** Aborts the handlers of jobs this daemon no longer holds (it was declared dead meanwhile). */
  abortAll(reason: string): void {
    for (const r of this.running.values()) r.controller.abort(new Error(reason));
  }

  private async record(job: Job, outcome: Outcome, started: number, log: Logger): Promise<void> {
    let recorded = false;
    try {
      recorded = await this.recorder.record({ jobId: job.jobId, attempt: job.attempt, outcome });
    } catch (error) {
      log.error({ err: errorMessage(error) }, 'job outcome could not be written; the job will be rescued');
    }
    const durationMs = performance.now() - started;
    if (outcome.kind === 'failed') log.warn({ err: outcome.error, durationMs }, 'job failed');
    else if (outcome.kind === 'retry') log.info({ err: outcome.error, delayMs: outcome.delayMs }, 'job will be retried');
    else log.debug({ outcome: outcome.kind, durationMs }, 'job finished');
    this.emit('job:done', { job, outcome, recorded, durationMs } satisfies JobEvent);
  }

  private async outcomeOf(job: Job, controller: AbortController, log: Logger): Promise<Outcome> {
    const handler = this.handlers[job.jobType];
    if (!handler) return { kind: 'failed', error: `no handler for job_type "${job.jobType}" in this daemon` };
    try {
      const result = await handler(job, { signal: controller.signal, stopping: this.stopping.signal, log });
      return { kind: 'completed', result: result ?? null };
    } catch (error) {
      const message = errorMessage(error);
      if (error instanceof SnoozeError) return { kind: 'snooze', delayMs: error.delayMs, error: message };
      if (error instanceof HaltError) {
        this.emit('halt', { jobType: job.jobType, reason: message });
        return { kind: 'snooze', delayMs: HALT_RECHECK_MS, error: message };
      }
      if (controller.signal.aborted) {
        // Shutdown or a lost lease interrupted it; it did not fail, so the attempt is given back.
        return { kind: 'snooze', delayMs: 0, error: `interrupted: ${errorMessage(controller.signal.reason)}` };
      }
      if (error instanceof PermanentError) return { kind: 'failed', error: message };
      // The database went away under the handler: nothing is wrong with the job, so waiting for
      // the database must not spend its attempts (the chaos suite saw broadcasts fail this way).
      if (isDatabaseUnavailable(error)) return { kind: 'snooze', delayMs: DATABASE_RETRY_MS, error: `database unavailable: ${message}` };
      if (job.attempt >= job.maxAttempts) return { kind: 'failed', error: `${message} (attempt ${job.attempt} of ${job.maxAttempts})` };
      log.debug({ err: message }, 'handler threw a retriable error');
      return { kind: 'retry', error: message, delayMs: retryDelayMs(job.attempt + 1, this.backoff) };
    }
  }
}
