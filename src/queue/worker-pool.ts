import { EventEmitter, setMaxListeners } from 'node:events';
import { HaltError, PermanentError, RetriableError, SnoozeError } from '../errors.js';
import { errorMessage, type Logger } from '../log.js';
import { retryDelayMs, type BackoffPolicy } from '../time.js';
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

/** A job that threw HaltError (say, a revoked bot token) is snoozed this long, again and again, until a person fixes the cause. */
const HALTED_JOB_SNOOZE_MS = 60_000;

/**
 * One job in a slot. Its abort controller and child logger are made on first use: most jobs never
 * look at either, and at tens of thousands of short jobs a second they were a tenth of the CPU.
 */
class RunningJob {
  private controller: AbortController | undefined;
  private abortReason: unknown;
  aborted = false;
  private logger: Logger | undefined;
  done!: Promise<void>;

  constructor(
    readonly job: Job,
    private readonly parentLog: Logger,
  ) {}

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      // A broadcast attaches one listener per call in flight (up to a few hundred) to its signal.
      setMaxListeners(0, this.controller.signal);
      if (this.aborted) this.controller.abort(this.abortReason);
    }
    return this.controller.signal;
  }

  get log(): Logger {
    this.logger ??= this.parentLog.child({ jobId: this.job.jobId, jobType: this.job.jobType, attempt: this.job.attempt });
    return this.logger;
  }

  abort(reason: Error): void {
    if (this.aborted) return;
    this.aborted = true;
    this.abortReason = reason;
    this.controller?.abort(reason);
  }
}

/**
 * Runs claimed jobs in a fixed number of slots and turns what each handler did into an Outcome.
 * Events: 'job:start' (job), 'job:done' (JobEvent), 'slot-freed' (how long the handler ran, when a
 * handler finished; nothing when a written outcome freed it), 'halt' ({ jobType, reason }).
 */
export class WorkerPool extends EventEmitter {
  private readonly running = new Map<number, RunningJob>();
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

  /** How many jobs run at once at most. */
  get concurrency(): number {
    return this.capacity;
  }

  runningJobs(): Job[] {
    return [...this.running.values()].map((r) => r.job);
  }

  run(job: Job): void {
    const entry = new RunningJob(job, this.log);
    const started = performance.now();
    this.emit('job:start', job);
    this.running.set(job.jobId, entry);
    entry.done = this.outcomeOf(entry).then((outcome) => {
      // The handler's own time, without the outcome's write: what prefetch 'auto' sizes by.
      const ranMs = performance.now() - started;
      this.running.delete(job.jobId);
      const recording = this.record(entry, outcome, started).finally(() => {
        this.recording.delete(recording);
        this.emit('slot-freed');
      });
      this.recording.add(recording);
      this.emit('slot-freed', ranMs);
    });
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
      for (const r of this.running.values()) r.abort(new Error('daemon shutting down'));
      await all();
    }
    await Promise.all([...this.recording]);
  }

  /** Aborts the handlers of jobs this daemon no longer holds (it was declared dead meanwhile). */
  abortAll(reason: string): void {
    for (const r of this.running.values()) r.abort(new Error(reason));
  }

  private async record(entry: RunningJob, outcome: Outcome, started: number): Promise<void> {
    const { job } = entry;
    let recorded = false;
    try {
      recorded = await this.recorder.record({ jobId: job.jobId, attempt: job.attempt, claimedAt: job.claimedAt, outcome });
    } catch (error) {
      entry.log.error({ err: errorMessage(error) }, 'job outcome could not be written; the job will be rescued');
    }
    const durationMs = performance.now() - started;
    if (outcome.kind === 'failed') entry.log.warn({ err: outcome.error, durationMs }, 'job failed');
    else if (outcome.kind === 'retry') entry.log.info({ err: outcome.error, delayMs: outcome.delayMs }, 'job will be retried');
    // Checked first: the child logger is only worth making if the line is written.
    else if (this.log.isLevelEnabled('debug')) entry.log.debug({ outcome: outcome.kind, durationMs }, 'job finished');
    this.emit('job:done', { job, outcome, recorded, durationMs } satisfies JobEvent);
  }

  private async outcomeOf(entry: RunningJob): Promise<Outcome> {
    const { job } = entry;
    const handler = this.handlers[job.jobType];
    if (!handler) return { kind: 'failed', error: `no handler for job_type "${job.jobType}" in this daemon`, reason: 'no_handler' };
    const stopping = this.stopping.signal;
    const context: HandlerContext = {
      get signal() {
        return entry.signal;
      },
      stopping,
      get log() {
        return entry.log;
      },
    };
    let thrown: unknown;
    try {
      const result = await handler(job, context);
      return { kind: 'completed', result: result ?? null };
    } catch (error) {
      thrown = error;
    }
    try {
      return this.outcomeOfThrown(entry, thrown);
    } catch {
      // A thrown value whose very inspection throws (a Proxy, a getter) must still end its job:
      // an outcome that is never written leaves the job 'processing' and its slot taken.
      const attempts = `attempt ${job.attempt} of ${job.maxAttempts}`;
      if (job.attempt >= job.maxAttempts) return { kind: 'failed', error: `handler threw an unreadable value (${attempts})`, reason: 'handler_error' };
      return { kind: 'retry', error: 'handler threw an unreadable value', reason: 'handler_error', delayMs: retryDelayMs(job.attempt + 1, this.backoff) };
    }
  }

  private outcomeOfThrown(entry: RunningJob, error: unknown): Outcome {
    const { job } = entry;
    const message = errorMessage(error);
    if (error instanceof SnoozeError) return { kind: 'snooze', delayMs: error.delayMs, error: message, reason: error.reason };
    if (error instanceof HaltError) {
      this.emit('halt', { jobType: job.jobType, reason: message });
      return { kind: 'snooze', delayMs: HALTED_JOB_SNOOZE_MS, error: message, reason: error.reason };
    }
    // Before the interruption check: a send cut off mid-call says "outcome unknown" this way,
    // and handing it back would send it again.
    if (error instanceof PermanentError) return { kind: 'failed', error: message, reason: error.reason };
    if (entry.aborted) {
      // Shutdown or a lost lease interrupted it; it did not fail, so the attempt is given back.
      return { kind: 'snooze', delayMs: 0, error: `interrupted: ${errorMessage(entry.signal.reason)}`, reason: 'interrupted' };
    }
    // The database went away under the handler: nothing is wrong with the job, so waiting for
    // the database must not spend its attempts (the chaos suite saw broadcasts fail this way).
    if (isDatabaseUnavailable(error)) return { kind: 'snooze', delayMs: DATABASE_RETRY_MS, error: `database unavailable: ${message}`, reason: 'database_unavailable' };
    // A RetriableError names its reason (a 5xx, a timeout); anything else thrown is a handler_error.
    const reason = error instanceof RetriableError ? error.reason : 'handler_error';
    if (job.attempt >= job.maxAttempts) return { kind: 'failed', error: `${message} (attempt ${job.attempt} of ${job.maxAttempts})`, reason };
    entry.log.debug({ err: message, reason }, 'handler threw a retriable error');
    return { kind: 'retry', error: message, reason, delayMs: retryDelayMs(job.attempt + 1, this.backoff) };
  }
}
