// The parts one started BroadcastQueue runs, assembled and wired in the order the data flows:
// listener → scheduler → claimer → worker pool → recorder, with the rescuer, the liveness lock,
// maintenance (cleaner, ledger retention) and the schedule ticker beside them. broadcast-queue.ts
// is the public facade; this is what its start() builds and its stop() takes down.
import type { EventEmitter } from 'node:events';
import { createClaimPool, type Pool } from './db/pool.js';
import type { Logger } from './log.js';
import { Claimer } from './queue/claimer.js';
import { Recorder } from './queue/recorder.js';
import { WorkerPool, type JobHandler, type JobEvent } from './queue/worker-pool.js';
import { Scheduler } from './queue/scheduler.js';
import { Listener } from './queue/listener.js';
import { IdleSlots, assignedJobs } from './queue/idle-slots.js';
import { Rescuer } from './queue/rescuer.js';
import { LivenessLock } from './queue/liveness.js';
import { finishedJobsCleanup } from './queue/cleaner.js';
import { Maintenance } from './queue/maintenance.js';
import { TELEGRAM_JOB_TYPES } from './queue/jobs-store.js';
import { ScheduleTicker } from './schedules/ticker.js';
import { historyRetention } from './broadcast/retention.js';
import type { TelegramDelivery } from './jobs/delivery.js';
import type { ResolvedQueueSettings } from './config/options.js';
import { PACKAGE_VERSION } from './version.js';

export interface PartsContext {
  daemonId: string;
  pool: Pool;
  /** The direct connection (not through PgBouncer): LISTEN, the liveness lock and claims. */
  directConnectionString: string;
  queues: string[];
  handlers: Record<string, JobHandler>;
  concurrency: number;
  settings: ResolvedQueueSettings;
  telegram: TelegramDelivery | null;
  log: Logger;
  /** The queue, which re-emits what its parts tell (claimed, job:start, job:done, halt, rescued, listener:*). */
  events: EventEmitter;
}

export class QueueParts {
  readonly listener: Listener;
  readonly scheduler: Scheduler;
  readonly workers: WorkerPool;
  readonly recorder: Recorder;
  readonly rescuer: Rescuer;
  readonly liveness: LivenessLock;
  readonly maintenance: Maintenance;
  readonly ticker: ScheduleTicker;
  private readonly claimPool: Pool;

  constructor(private readonly ctx: PartsContext) {
    const { daemonId, pool, directConnectionString, queues, handlers, concurrency, settings, telegram, log, events } = ctx;
    // While the token is rejected, send and broadcast jobs stay pending; other job types go on.
    const claimable = () => Object.keys(handlers).sort().filter((t) => !(telegram?.halted && TELEGRAM_JOB_TYPES.includes(t)));
    this.liveness = new LivenessLock(directConnectionString, log);
    const recorder = (this.recorder = new Recorder(pool, daemonId, log));
    const workers = (this.workers = new WorkerPool(concurrency, handlers, recorder, { baseMs: settings.retryBaseMs, maxMs: settings.retryMaxMs }, log));
    // The direct connection, like LISTEN's: a session setting and a named statement must not be
    // shared with other clients through a transaction-pooling PgBouncer.
    this.claimPool = createClaimPool({ connectionString: directConnectionString, max: 2, applicationName: 'broadcast-queued claims', log });
    const claimer = new Claimer(this.claimPool, daemonId, queues, claimable());
    // Send jobs are left to the claim. A job handed over just after its daemon was killed (before
    // PostgreSQL noticed the lock's connection close) is rescued as an attempt that may have sent,
    // and a send's next attempt then fails it as outcome unknown though nothing was sent (chaos
    // --quick --stress --seed 5704: 2 such sends). A claim is only ever made by a live daemon.
    const handedOver = () => claimable().filter((t) => t !== 'send');
    const idleSlots = new IdleSlots(this.claimPool, daemonId, this.liveness.lockKey, queues, handedOver);
    const scheduler = (this.scheduler = new Scheduler(claimer, workers, log, {
      size: settings.prefetch,
      maxWaitMs: 1_000,
      // Handed back unstarted: pending, due now, the attempt given back.
      handBack: async (jobs) => {
        await Promise.all(jobs.map((job) => recorder.record({ jobId: job.jobId, attempt: job.attempt, claimedAt: job.claimedAt, outcome: { kind: 'snooze', delayMs: 0, error: null, reason: null } })));
      },
    }, idleSlots));
    const listener = (this.listener = new Listener(directConnectionString, log));
    const rescuer = (this.rescuer = new Rescuer(pool, { daemonId, queues, jobTypes: claimable(), concurrency, version: PACKAGE_VERSION }, this.liveness, { sweepMs: settings.sweepMs, hungAfterMs: settings.rescueAfterMs }, log));
    // 0 days turns each off (config/validate.ts), in the daemon as in the library.
    this.maintenance = new Maintenance([finishedJobsCleanup(pool, settings.cleanupDays), historyRetention(pool, settings.ledgerRetentionDays)], log);
    this.ticker = new ScheduleTicker(pool, log);

    const served = new Set(queues);
    listener.on('notification', (queue: string) => {
      if (served.has(queue)) scheduler.wake('notification');
      events.emit('listener:notification', queue);
    });
    listener.on('assigned', (payload: string) => {
      const jobs = assignedJobs(payload, daemonId, idleSlots.token);
      if (jobs === 'forged') log.warn({ bytes: payload.length }, 'ignored a notification on broadcast_queue_assigned that the insert trigger did not send');
      else if (jobs !== 'other') scheduler.assigned(jobs);
    });
    listener.on('schedules', () => this.ticker.wake());
    listener.on('connected', () => {
      scheduler.wake('connected');
      void scheduler.adoptOrphans();
      this.ticker.wake();
      events.emit('listener:connected');
    });
    listener.on('disconnected', () => {
      // Jobs handed over now would come with no notification: offer no slots until LISTEN is back.
      void idleSlots.withdraw().catch(() => undefined);
      events.emit('listener:disconnected');
    });
    workers.on('job:start', (job) => events.emit('job:start', job));
    workers.on('job:done', (event: JobEvent) => {
      if (event.outcome.kind === 'retry' || (event.outcome.kind === 'snooze' && event.outcome.delayMs > 0)) scheduler.noteFutureRun(event.outcome.delayMs);
      events.emit('job:done', event);
    });
    workers.on('halt', (info: { jobType: string; reason: string }) => {
      if (telegram && TELEGRAM_JOB_TYPES.includes(info.jobType)) telegram.halt(info.reason);
      events.emit('halt', info);
    });
    telegram?.on('halted', () => {
      void idleSlots.withdraw().catch(() => undefined);
      claimer.setJobTypes(claimable());
      rescuer.setJobTypes(claimable());
    });
    telegram?.on('resumed', () => {
      claimer.setJobTypes(claimable());
      rescuer.setJobTypes(claimable());
      scheduler.wake('manual');
    });
    rescuer.on('lost-lease', () => workers.abortAll('this daemon was declared dead; its jobs were handed to others'));
    rescuer.on('rescued', (rows) => events.emit('rescued', rows));
    rescuer.on('due', () => scheduler.wake('sweep'));
    rescuer.on('next-tick', (delayMs: number | null) => this.ticker.noteNextTick(delayMs));
    scheduler.on('claimed', (count) => events.emit('claimed', count));
    scheduler.on('claim-failed', (error) => events.emit('claim:failed', error));
  }

  /**
   * Takes the liveness lock and runs the first sweep. On failure only the lock's connection and the
   * claim pool were open, and both are closed again: there is nothing for stop() to stop.
   */
  async lease(signal: AbortSignal): Promise<void> {
    try {
      await this.liveness.start(signal);
      signal.throwIfAborted();
      await this.rescuer.start();
      signal.throwIfAborted();
    } catch (error) {
      await this.liveness.stop();
      await this.claimPool.end();
      throw error;
    }
  }

  /** After lease(): starts claiming, maintenance and the ticker, then LISTEN (aborted by stop()). */
  async run(signal: AbortSignal): Promise<void> {
    this.scheduler.start();
    this.maintenance.start();
    this.ticker.start();
    await this.listener.start(signal);
    this.ctx.log.info({ queues: this.ctx.queues, jobTypes: Object.keys(this.ctx.handlers).sort(), concurrency: this.ctx.concurrency }, 'queue started');
  }

  /**
   * Stops claiming, lets running jobs finish for up to shutdownTimeoutMs, hands back the rest, and
   * closes the parts' connections (the queue's own pool is the caller's).
   */
  async stop(): Promise<void> {
    const timeoutMs = this.ctx.settings.shutdownTimeoutMs;
    // Outcomes wait for an unreachable database, but not past the shutdown timeout: stop() must
    // end. What is left unwritten stays 'processing' and is rescued like a crash.
    const giveUp = setTimeout(() => this.recorder.close(), timeoutMs + 2_000);
    await this.scheduler.stop();
    await this.ticker.stop();
    const maintenanceStopped = this.maintenance.stop();
    await this.workers.drain(timeoutMs);
    await this.recorder.drain();
    clearTimeout(giveUp);
    this.recorder.close();
    await maintenanceStopped;
    await this.rescuer.stop();
    await this.liveness.stop();
    await this.listener.stop();
    this.ctx.telegram?.stop();
    await this.claimPool.end();
  }
}
