import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { createClaimPool, createPool, type Pool } from './db/pool.js';
import { migrate } from './db/migrate.js';
import { startEmbeddedPostgres, type EmbeddedDatabase } from './db/embedded.js';
import { silentLogger, type Logger } from './log.js';
import { Claimer } from './queue/claimer.js';
import { Recorder } from './queue/recorder.js';
import { WorkerPool, type JobHandler, type JobEvent } from './queue/worker-pool.js';
import { Scheduler } from './queue/scheduler.js';
import { Listener } from './queue/listener.js';
import { Rescuer } from './queue/rescuer.js';
import { LivenessLock } from './queue/liveness.js';
import { finishedJobsCleanup } from './queue/cleaner.js';
import { Maintenance } from './queue/maintenance.js';
import { ScheduleTicker } from './schedules/ticker.js';
import { addSchedule, listSchedules, removeSchedule, runScheduleNow, setScheduleEnabled, type ScheduleRow, type ScheduleSpec } from './schedules/schedules-store.js';
import { historyRetention } from './broadcast/retention.js';
import { readQueueStatus, type QueueStatus } from './queue/status.js';
import { enqueueJob, type EnqueueOptions, type EnqueuedJob } from './queue/enqueue.js';
import { TELEGRAM_JOB_TYPES } from './queue/jobs-store.js';
import { PACKAGE_VERSION } from './version.js';
import { PayloadError } from './errors.js';
import { parseChatId, parseMessage } from './telegram/message.js';
import { validateInlineBroadcast } from './broadcast/engine.js';
import { TelegramDelivery } from './jobs/delivery.js';
import type { TelegramOption } from './telegram/sender.js';
import type { Sleep } from './time.js';
import { createDashboardHandler, type DashboardHandler, type DashboardOptions } from './http/dashboard/handler.js';
import { createAdminHandler, type AdminHandler, type AdminHandlerOptions } from './http/admin.js';
import type { QueueAccess } from './http/queue-access.js';
import { createMetrics, type Metrics } from './http/metrics.js';
import { checkTrackingOptions, resolveCaptureOptions, resolveQueueOptions, type TrackingOptions, type CaptureOptions, type QueueSettings, type ResolvedCaptureOptions, type ResolvedQueueSettings } from './config/options.js';
import { SubscriberCapture, type RecordedUpdate, type Update } from './engagement/capture.js';
import { captureMiddleware } from './engagement/telegraf.js';
import { Tracking } from './engagement/tracking.js';
import { createRedirectHandler, type RedirectHandler } from './engagement/redirect-server.js';
import { DEFAULTS } from './config/defaults.js';
import type { Context, MiddlewareFn } from 'telegraf';
import { checkSetting } from './config/validate.js';
import { ConfigError } from './errors.js';

/** The options of createBroadcastQueue; the tunable ones, with their defaults, are in QueueSettings (config/options.ts). */
export interface BroadcastQueueOptions extends QueueSettings {
  /** PostgreSQL URL. Without one, an embedded PostgreSQL is started in `embedded.dataDir`. */
  connectionString?: string;
  /** Direct connection for LISTEN, the liveness lock and claims when connectionString goes through PgBouncer. Defaults to connectionString. */
  listenConnectionString?: string;
  embedded?: { dataDir: string; port?: number; ephemeral?: boolean };
  /** Your own job types; a job is only claimed by an instance that has its handler. */
  handlers?: Record<string, JobHandler>;
  /** Adds the 'send' and 'broadcast' job types: a bot token (and apiRoot), or your Telegraf's telegram. */
  telegram?: TelegramOption;
  /** POST a signed JSON summary to this URL when a broadcast finishes (retried through the queue). */
  webhook?: { url: string; secret?: string };
  /** How queue.telegraf() and queue.recordUpdate() keep the subscriber list: opt-out and opt-in commands and replies. */
  capture?: CaptureOptions;
  /** Tracked links and buttons for track: true broadcasts: the redirect listener's public URL and the tokens' key. */
  tracking?: TrackingOptions;
  log?: Logger;
  /** How the Telegram send path waits for slots and pauses. A seam for tests that make every wait 100–500 ms late; defaults to timers. */
  sleep?: Sleep;
}

export interface BroadcastQueueStatus extends QueueStatus {
  running: boolean;
  daemonId: string;
  listenerConnected: boolean;
  paused: boolean;
  concurrency: number;
  activeJobs: number;
  jobTypes: string[];
  telegram: { botId: number; halted: string | null } | null;
}

/**
 * The whole engine for one process: listener → scheduler → claimer → worker pool → recorder,
 * with the rescuer and cleaner beside them. The daemon binary is a thin shell over this.
 */
export class BroadcastQueue extends EventEmitter {
  readonly daemonId = `${os.hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  readonly log: Logger;
  private readonly handlers: Record<string, JobHandler>;
  private embeddedDb: EmbeddedDatabase | null = null;
  private poolRef: Pool | null = null;
  private claimPool: Pool | null = null;
  private parts: { listener: Listener; scheduler: Scheduler; workers: WorkerPool; recorder: Recorder; rescuer: Rescuer; liveness: LivenessLock; maintenance: Maintenance; ticker: ScheduleTicker } | null = null;
  private starting: Promise<void> | null = null;
  /** Aborted by stop(): a start() still retrying against an unreachable database gives up at once. */
  private startAbort: AbortController | null = null;
  private concurrency: number;
  readonly telegram: TelegramDelivery | null;
  /** The options as this queue runs with them: checked, each default filled in from DEFAULTS. */
  readonly settings: ResolvedQueueSettings;
  private readonly captureSettings: ResolvedCaptureOptions;
  private captureRef: SubscriberCapture | null = null;
  /** Tracked links and buttons; null when the tracking option is absent. */
  readonly tracking: Tracking | null;

  /** Throws a ConfigError naming every impossible option, with the words the daemon uses at start-up. */
  constructor(private readonly options: BroadcastQueueOptions = {}) {
    super();
    this.settings = resolveQueueOptions(options);
    this.captureSettings = resolveCaptureOptions(options.capture);
    const tracking = checkTrackingOptions(options.tracking);
    this.log = options.log ?? silentLogger();
    this.tracking = tracking ? new Tracking(() => this.db(), { ...tracking, flushMs: DEFAULTS.clickFlushMs }, this.log, (kind) => this.emit('engagement', kind)) : null;
    this.handlers = { ...options.handlers };
    this.concurrency = this.settings.concurrency;
    this.telegram = options.telegram ? new TelegramDelivery(options.telegram, { ...this.settings, webhook: options.webhook, sleep: options.sleep, tracking: this.tracking }, this.log) : null;
  }

  get queues(): string[] {
    return [...this.settings.queues];
  }

  get jobTypes(): string[] {
    return Object.keys(this.handlers).sort();
  }

  /** The pool, connecting (and starting the embedded database) on first use. */
  async db(): Promise<Pool> {
    if (this.poolRef) return this.poolRef;
    let connectionString = this.options.connectionString;
    if (!connectionString) {
      if (!this.options.embedded) throw new Error('no connectionString given and no embedded.dataDir to start a PostgreSQL in');
      this.embeddedDb = await startEmbeddedPostgres({ dataDir: this.options.embedded.dataDir, port: this.options.embedded.port ?? 0, ephemeral: this.options.embedded.ephemeral, log: this.log });
      this.log.info({ dataDir: this.embeddedDb.dataDir, port: this.embeddedDb.port, psql: this.embeddedDb.psqlHint }, 'embedded PostgreSQL started');
      connectionString = this.embeddedDb.connectionString;
    }
    this.poolRef = createPool({ connectionString, max: this.concurrency + 4, applicationName: 'broadcast-queued', log: this.log });
    return this.poolRef;
  }

  /** The connection string in use (the embedded one when none was given). */
  get connectionString(): string | undefined {
    return this.options.connectionString ?? this.embeddedDb?.connectionString;
  }

  get embedded(): EmbeddedDatabase | null {
    return this.embeddedDb;
  }

  /** Adds a handler; call before start(). */
  handle(jobType: string, handler: JobHandler): void {
    if (this.parts) throw new Error('add handlers before start()');
    this.handlers[jobType] = handler;
  }

  start(concurrency?: number): Promise<void> {
    if (concurrency !== undefined) {
      const problem = checkSetting('concurrency', concurrency);
      if (problem) return Promise.reject(new ConfigError([`concurrency ${problem}`]));
      this.concurrency = concurrency;
    }
    if (!this.starting) this.startAbort = new AbortController();
    this.starting ??= this.startParts(this.startAbort!.signal).catch((error) => {
      this.starting = null;
      throw error;
    });
    return this.starting;
  }

  private async startParts(signal: AbortSignal): Promise<void> {
    const pool = await this.db();
    signal.throwIfAborted();
    if (this.settings.migrate) await migrate(pool, this.log);
    signal.throwIfAborted();
    if (this.telegram) {
      // Your own handlers for 'send' or 'broadcast' win over the built-in ones.
      for (const [type, handler] of Object.entries(this.telegram.handlers(pool))) this.handlers[type] ??= handler;
      await this.telegram.checkToken();
    }
    const log = this.log.child({ daemonId: this.daemonId });
    const liveness = new LivenessLock(this.options.listenConnectionString ?? this.connectionString!, log);
    const recorder = new Recorder(pool, this.daemonId, log);
    const workers = new WorkerPool(this.concurrency, this.handlers, recorder, { baseMs: this.settings.retryBaseMs, maxMs: this.settings.retryMaxMs }, log);
    const halted = (t: string) => Boolean(this.telegram?.halted) && TELEGRAM_JOB_TYPES.includes(t);
    // The direct connection, like LISTEN's: a session setting and a named statement must not be
    // shared with other clients through a transaction-pooling PgBouncer.
    this.claimPool = createClaimPool({ connectionString: this.options.listenConnectionString ?? this.connectionString!, max: 2, applicationName: 'broadcast-queued claims', log });
    const claimer = new Claimer(this.claimPool, this.daemonId, this.queues, this.jobTypes.filter((t) => !halted(t)));
    const scheduler = new Scheduler(claimer, workers, log, {
      size: this.settings.prefetch,
      maxWaitMs: 1_000,
      // Handed back unstarted: pending, due now, the attempt given back.
      handBack: async (jobs) => {
        await Promise.all(jobs.map((job) => recorder.record({ jobId: job.jobId, attempt: job.attempt, claimedAt: job.claimedAt, outcome: { kind: 'snooze', delayMs: 0, error: null, reason: null } })));
      },
    });
    const listener = new Listener(this.options.listenConnectionString ?? this.connectionString!, log);
    const rescuer = new Rescuer(pool, { daemonId: this.daemonId, queues: this.queues, jobTypes: this.jobTypes.filter((t) => !halted(t)), concurrency: this.concurrency, version: PACKAGE_VERSION }, liveness, { sweepMs: this.settings.sweepMs, hungAfterMs: this.settings.rescueAfterMs }, log);
    // 0 days turns each off (config/validate.ts), in the daemon as in the library.
    const { cleanupDays, ledgerRetentionDays } = this.settings;
    const maintenance = new Maintenance([finishedJobsCleanup(pool, cleanupDays), historyRetention(pool, ledgerRetentionDays)], log);
    const ticker = new ScheduleTicker(pool, log);

    const served = new Set(this.queues);
    listener.on('notification', (queue: string) => {
      if (served.has(queue)) scheduler.wake('notification');
      this.emit('listener:notification', queue);
    });
    listener.on('connected', () => {
      scheduler.wake('connected');
      this.emit('listener:connected');
    });
    listener.on('disconnected', () => this.emit('listener:disconnected'));
    workers.on('job:start', (job) => this.emit('job:start', job));
    workers.on('job:done', (event: JobEvent) => {
      if (event.outcome.kind === 'retry' || (event.outcome.kind === 'snooze' && event.outcome.delayMs > 0)) scheduler.noteFutureRun(event.outcome.delayMs);
      this.emit('job:done', event);
    });
    workers.on('halt', (info: { jobType: string; reason: string }) => {
      if (this.telegram && TELEGRAM_JOB_TYPES.includes(info.jobType)) this.telegram.halt(info.reason);
      this.emit('halt', info);
    });
    // While the token is rejected, send and broadcast jobs stay pending; other job types go on.
    const claimable = () => this.jobTypes.filter((t) => !(this.telegram?.halted && TELEGRAM_JOB_TYPES.includes(t)));
    this.telegram?.on('halted', () => {
      claimer.setJobTypes(claimable());
      rescuer.setJobTypes(claimable());
    });
    this.telegram?.on('resumed', () => {
      claimer.setJobTypes(claimable());
      rescuer.setJobTypes(claimable());
      scheduler.wake('manual');
    });
    rescuer.on('lost-lease', () => workers.abortAll('this daemon was declared dead; its jobs were handed to others'));
    rescuer.on('rescued', (rows) => this.emit('rescued', rows));
    rescuer.on('due', () => scheduler.wake('sweep'));
    scheduler.on('claimed', (count) => this.emit('claimed', count));

    try {
      await liveness.start(signal);
      signal.throwIfAborted();
      await rescuer.start();
      signal.throwIfAborted();
    } catch (error) {
      // Nothing runs yet but the lock's connection; stop() finds no parts to stop.
      await liveness.stop();
      throw error;
    }
    this.parts = { listener, scheduler, workers, recorder, rescuer, liveness, maintenance, ticker };
    scheduler.start();
    maintenance.start();
    ticker.start();
    // Aborted by stop(), which then stops the parts above as after any start.
    await listener.start(signal);
    log.info({ queues: this.queues, jobTypes: this.jobTypes, concurrency: this.concurrency }, 'queue started');
  }

  /**
   * Stops claiming, lets running jobs finish for up to shutdownTimeoutMs, hands back the rest
   * (pending, attempt refunded), and closes every connection.
   */
  async stop(): Promise<void> {
    this.startAbort?.abort(new Error('stopped before start-up finished'));
    this.startAbort = null;
    await this.starting?.catch(() => undefined);
    const parts = this.parts;
    this.parts = null;
    this.starting = null;
    if (parts) {
      const timeoutMs = this.settings.shutdownTimeoutMs;
      // Outcomes wait for an unreachable database, but not past the shutdown timeout: stop() must
      // end. What is left unwritten stays 'processing' and is rescued like a crash.
      const giveUp = setTimeout(() => parts.recorder.close(), timeoutMs + 2_000);
      await parts.scheduler.stop();
      await parts.ticker.stop();
      const maintenanceStopped = parts.maintenance.stop();
      await parts.workers.drain(timeoutMs);
      await parts.recorder.drain();
      clearTimeout(giveUp);
      parts.recorder.close();
      await maintenanceStopped;
      await parts.rescuer.stop();
      await parts.liveness.stop();
      await parts.listener.stop();
      this.telegram?.stop();
      this.log.info({ daemonId: this.daemonId }, 'queue stopped');
    }
    await this.claimPool?.end();
    this.claimPool = null;
    // What the bot's updates said until now is written before the pool closes.
    if (this.captureRef && this.poolRef) await this.captureRef.close();
    if (this.poolRef) await this.tracking?.flush();
    this.captureRef = null;
    await this.poolRef?.end();
    this.poolRef = null;
    await this.embeddedDb?.stop();
    this.embeddedDb = null;
  }

  /** Runs one sweep now (register, rescue, due check); normally this runs on a timer. */
  async rescueNow(): Promise<void> {
    await this.parts?.rescuer.tick();
  }

  /** Stops claiming until resume(); running jobs go on. Resolves once no claim is in flight. */
  async pause(): Promise<void> {
    await this.parts?.scheduler.pause();
  }

  resume(): void {
    this.parts?.scheduler.resume();
  }

  async enqueue(jobType: string, payload: Record<string, unknown>, options: EnqueueOptions = {}): Promise<EnqueuedJob> {
    return enqueueJob(await this.db(), jobType, payload, { maxAttempts: this.settings.maxAttempts, ...options });
  }

  /**
   * Enqueues a broadcast: a broadcasts row's id, or an inline spec ({ message | variants,
   * chat_ids | audience, title?, frequency_cap?, allow_paid_broadcast? }). An inline spec is
   * checked here, so a bad message or audience throws a PayloadError to the caller.
   */
  async queueBroadcast(idOrSpec: number | Record<string, unknown>, options: EnqueueOptions = {}): Promise<EnqueuedJob> {
    if (typeof idOrSpec === 'number') {
      if (!Number.isSafeInteger(idOrSpec) || idOrSpec <= 0) throw new PayloadError(`broadcast id must be a positive integer, got ${idOrSpec}`);
      return this.enqueue('broadcast', { broadcast_id: idOrSpec }, options);
    }
    validateInlineBroadcast(idOrSpec);
    return this.enqueue('broadcast', idOrSpec, options);
  }

  /** Enqueues one message to one chat (the low-latency 'send' job). */
  async send(chatId: number, message: Record<string, unknown>, options: EnqueueOptions = {}): Promise<EnqueuedJob> {
    const payload = { chat_id: chatId, message };
    parseChatId(chatId, 'chatId');
    parseMessage(message, 'message');
    return this.enqueue('send', payload, options);
  }

  // --- recurring schedules (src/schedules; every daemon's ticker takes their ticks) -------------

  /** Adds a recurring schedule (cron in an IANA time zone); refuses a bad cron, zone or a taken name. */
  async addSchedule(spec: ScheduleSpec): Promise<ScheduleRow> {
    const row = await addSchedule(await this.db(), spec);
    this.parts?.ticker.wake();
    return row;
  }

  async listSchedules(): Promise<ScheduleRow[]> {
    return listSchedules(await this.db());
  }

  /** True if the schedule existed. */
  async removeSchedule(name: string): Promise<boolean> {
    return removeSchedule(await this.db(), name);
  }

  /** Pauses (false) or resumes (true) a schedule; null if there is none by that name. */
  async setScheduleEnabled(name: string, enabled: boolean): Promise<ScheduleRow | null> {
    const row = await setScheduleEnabled(await this.db(), name, enabled);
    if (enabled) this.parts?.ticker.wake();
    return row;
  }

  /** Enqueues the schedule's job now, outside its ticks; null if there is none by that name. */
  async runScheduleNow(name: string): Promise<{ jobId: number } | null> {
    return runScheduleNow(await this.db(), name);
  }

  async getStatus(): Promise<BroadcastQueueStatus> {
    const status = await readQueueStatus(await this.db(), this.settings.rescueAfterMs);
    return {
      ...status,
      running: this.parts !== null,
      daemonId: this.daemonId,
      listenerConnected: this.parts?.listener.connected ?? false,
      paused: this.parts?.scheduler.isPaused ?? false,
      concurrency: this.concurrency,
      activeJobs: this.parts?.workers.size ?? 0,
      jobTypes: this.jobTypes,
      telegram: this.telegram ? { botId: this.telegram.botId, halted: this.telegram.halted } : null,
    };
  }

  // --- the subscriber list kept from the bot's updates (src/engagement) --------------------------

  private capture(): SubscriberCapture {
    this.captureRef ??= new SubscriberCapture(() => this.db(), this.captureSettings, this.log, (kind) => this.emit('engagement', kind));
    return this.captureRef;
  }

  /**
   * Telegraf middleware, `bot.use(queue.telegraf())`: keeps broadcast_subscribers current from every
   * update (first seen, language, last active, blocked or not), handles the opt-out and opt-in
   * commands, and hands each update on to the bot's own handlers.
   */
  telegraf(): MiddlewareFn<Context> {
    return captureMiddleware(this.capture(), this.tracking, this.log);
  }

  /**
   * The same for any other framework or a raw webhook: records one Bot API update (written
   * coalesced, in the background) and says whether it was an opt-out or opt-in and what to reply.
   */
  recordUpdate(update: Record<string, unknown>): RecordedUpdate {
    if (update === null || typeof update !== 'object' || Array.isArray(update)) throw new PayloadError(`recordUpdate needs a Bot API update object, got ${update === null ? 'null' : typeof update}`);
    return this.capture().record(update as Update);
  }

  /**
   * The public redirect listener's handler (GET /r/<token> → 302), for a node:http server of its
   * own: it must not share a server with the admin API. The daemon runs it on BQ_PUBLIC_HOST:BQ_PUBLIC_PORT.
   */
  redirectHandler(): RedirectHandler {
    if (!this.tracking) throw new ConfigError(['redirectHandler() needs the tracking option (publicUrl and linkSecret)']);
    return createRedirectHandler(this.tracking, this.log);
  }

  /** Writes the recorded updates now instead of at the next flush (tests, or before a planned exit). */
  async flushUpdates(): Promise<void> {
    await this.captureRef?.flush();
    await this.tracking?.flush();
  }

  // --- admin API and metrics (src/http) ---------------------------------------------------------
  private metricsRef: Metrics | null = null;

  /**
   * The admin API as a (req, res, next?) handler: `app.use('/api/admin/queue', queue.adminHandler())`
   * in Express, or a node:http server that strips the prefix (see startAdminServer in http/admin-server.ts).
   */
  adminHandler(options: AdminHandlerOptions = {}): AdminHandler {
    return createAdminHandler(this.adminAccess(), options);
  }

  /**
   * The web dashboard as a (req, res, next?) handler: `app.use('/dashboard', queue.dashboardHandler({
   * apiToken, basePath: '/dashboard' }))`; startAdminServer serves it at / (http/dashboard/handler.ts).
   */
  dashboardHandler(options: DashboardOptions = {}): DashboardHandler {
    return createDashboardHandler(this.adminAccess(), options);
  }

  /** This instance's Prometheus metrics, on a registry of its own; created (and counting) from the first call. */
  metrics(): Metrics {
    this.metricsRef ??= createMetrics(this.adminAccess());
    return this.metricsRef;
  }

  /** What the admin API and metrics may see; unlike db(), it never connects. */
  private adminAccess(): QueueAccess {
    return {
      log: this.log,
      queues: this.queues,
      pool: () => this.poolRef,
      status: () => this.getStatus(),
      telegram: () => this.telegram,
      on: (event, listener) => this.on(event, listener),
      runtime: () => ({
        running: this.parts !== null,
        listenerConnected: this.parts?.listener.connected ?? false,
        paused: this.parts?.scheduler.isPaused ?? false,
        activeJobs: this.parts?.workers.size ?? 0,
        concurrency: this.concurrency,
      }),
    };
  }
}
