import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { createPool, type Pool } from './db/pool.js';
import { migrate } from './db/migrate.js';
import { startEmbeddedPostgres, type EmbeddedDatabase } from './db/embedded.js';
import { silentLogger, type Logger } from './log.js';
import type { JobHandler } from './queue/worker-pool.js';
import { QueueParts } from './queue-parts.js';
import { addSchedule, listSchedules, removeSchedule, runScheduleNow, setScheduleEnabled, type ScheduleRow, type ScheduleSpec } from './schedules/schedules-store.js';
import { readQueueStatus } from './queue/status.js';
import { enqueueJob, type EnqueueOptions, type EnqueuedJob } from './queue/enqueue.js';
import { PayloadError } from './errors.js';
import { parseChatId, parseMessage } from './telegram/message.js';
import { createBroadcastFromSpec, validateInlineBroadcast } from './broadcast/engine.js';
import { setSubscriberTimeZone } from './broadcast/subscribers.js';
import { TelegramDelivery } from './jobs/delivery.js';
import { createDashboardHandler, type DashboardHandler, type DashboardOptions } from './http/dashboard/handler.js';
import { createAdminHandler, type AdminHandler, type AdminHandlerOptions } from './http/admin.js';
import type { QueueAccess, QueueRuntime } from './http/queue-access.js';
import { createMetrics, type Metrics } from './http/metrics.js';
import { resolveQueueOptions, type ResolvedQueueSettings } from './config/options.js';
import type { BroadcastQueueOptions, BroadcastQueueStatus } from './queue-options.js';
import type { RecordedUpdate } from './engagement/bot-engagement.js';
import type { Tracking } from './engagement/tracking.js';
import type { RedirectHandler } from './engagement/redirect-server.js';
import { BotEngagement } from './engagement/bot-engagement.js';
import type { Context, MiddlewareFn } from 'telegraf';
import { checkSetting } from './config/validate.js';
import { ConfigError } from './errors.js';

export type { BroadcastQueueOptions, BroadcastQueueStatus } from './queue-options.js';

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
  private parts: QueueParts | null = null;
  private starting: Promise<void> | null = null;
  /** Aborted by stop(): a start() still retrying against an unreachable database gives up at once. */
  private startAbort: AbortController | null = null;
  private concurrency: number;
  readonly telegram: TelegramDelivery | null;
  /** The options as this queue runs with them: checked, each default filled in from DEFAULTS. */
  readonly settings: ResolvedQueueSettings;
  /** The subscriber list kept from the bot's updates, and tracked links (src/engagement). */
  private readonly engagement: BotEngagement;

  /** Throws a ConfigError naming every impossible option, with the words the daemon uses at start-up. */
  constructor(private readonly options: BroadcastQueueOptions = {}) {
    super();
    this.settings = resolveQueueOptions(options);
    this.log = options.log ?? silentLogger();
    this.engagement = new BotEngagement(options.capture, options.tracking, () => this.db(), this.log, (kind) => this.emit('engagement', kind), (kind) => this.emit('engagement:refused', kind));
    this.handlers = { ...options.handlers };
    this.concurrency = this.settings.concurrency;
    this.telegram = options.telegram ? new TelegramDelivery(options.telegram, { ...this.settings, webhook: options.webhook, sleep: options.sleep, tracking: this.tracking }, this.log) : null;
  }

  /** Tracked links and buttons; null when the tracking option is absent. */
  get tracking(): Tracking | null {
    return this.engagement.tracking;
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
    // The sweep's connection outlives the pause between two sweeps: closed after 30 s, it was
    // opened anew for nearly every 30 s sweep of an idle daemon (a backend started each time,
    // which the server counts as a transaction of its own).
    const idleTimeoutMs = Math.min(Math.max(30_000, 2 * this.settings.sweepMs), 600_000);
    this.poolRef = createPool({ connectionString, max: this.concurrency + 4, applicationName: 'broadcast-queued', log: this.log, idleTimeoutMs });
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
    const parts = new QueueParts({
      daemonId: this.daemonId,
      pool,
      directConnectionString: this.options.listenConnectionString ?? this.connectionString!,
      queues: this.queues,
      handlers: this.handlers,
      concurrency: this.concurrency,
      settings: this.settings,
      telegram: this.telegram,
      log: this.log.child({ daemonId: this.daemonId }),
      events: this,
    });
    await parts.lease(signal);
    this.parts = parts;
    // Aborted by stop(), which then stops the parts as after any start.
    await parts.run(signal);
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
      await parts.stop();
      this.log.info({ daemonId: this.daemonId }, 'queue stopped');
    }
    // What the bot's updates said until now is written before the pool closes.
    await this.engagement.close(this.poolRef !== null);
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

  /**
   * Stores a broadcast for later or, with `send`, queues it at once with its job (`bqctl broadcast
   * create`): the inline spec's fields with a title ({ title?, message | variants, chat_ids |
   * audience (left out: every subscriber), track?, ab_test?, frequency_cap?, … }), checked as
   * queueBroadcast checks them, so a bad one throws a PayloadError and stores nothing.
   */
  async createBroadcast(spec: Record<string, unknown>, options: { send?: boolean } & Pick<EnqueueOptions, 'queue' | 'priority' | 'runAt' | 'maxAttempts'> = {}): Promise<{ broadcast_id: number; status: string; job_id: number | null }> {
    const { send, ...job } = options;
    return createBroadcastFromSpec(await this.db(), spec, send ? { ...job, maxAttempts: job.maxAttempts ?? this.settings.maxAttempts } : null);
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
    const { running, listenerConnected, paused, activeJobs, concurrency } = this.runtime();
    return {
      ...status,
      running,
      daemonId: this.daemonId,
      listenerConnected,
      paused,
      concurrency,
      activeJobs,
      jobTypes: this.jobTypes,
      telegram: this.telegram ? { botId: this.telegram.botId, halted: this.telegram.halted } : null,
    };
  }

  // --- the subscriber list kept from the bot's updates (src/engagement) --------------------------

  /**
   * Telegraf middleware, `bot.use(queue.telegraf())`: keeps broadcast_subscribers current from every
   * update (first seen, language, last active, blocked or not), handles the opt-out and opt-in
   * commands, and hands each update on to the bot's own handlers.
   */
  telegraf(): MiddlewareFn<Context> {
    return this.engagement.middleware();
  }

  /**
   * The same for any other framework or a raw webhook: records one Bot API update (written
   * coalesced, in the background) and says whether it was an opt-out or opt-in and what to reply,
   * and for a tracked callback button's press (recorded), the button's own callback_data (also put
   * back into the update) and the query for the bot to answer. Throws at once for what is no
   * update; the promise never rejects.
   */
  recordUpdate(update: Record<string, unknown>): Promise<RecordedUpdate> {
    return this.engagement.record(update);
  }

  /**
   * The public redirect listener's handler (GET /r/<token> → 302), for a node:http server of its
   * own: it must not share a server with the admin API. The daemon runs it on BQ_PUBLIC_HOST:BQ_PUBLIC_PORT.
   */
  redirectHandler(): RedirectHandler {
    return this.engagement.redirectHandler();
  }

  /**
   * Sets the IANA time zone (null clears it) that deliver_at_local broadcasts read for a chat; adds
   * the chat to the subscribers if needed. Updates carry no time zone, so the bot asks its users.
   */
  async setSubscriberTimeZone(chatId: number, timeZone: string | null): Promise<void> {
    await setSubscriberTimeZone(await this.db(), chatId, timeZone);
  }

  /** Writes the recorded updates now instead of at the next flush (tests, or before a planned exit). */
  async flushUpdates(): Promise<void> {
    await this.engagement.flush();
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
      runtime: () => this.runtime(),
    };
  }

  private runtime(): QueueRuntime {
    return {
      running: this.parts !== null,
      listenerConnected: this.parts?.listener.connected ?? false,
      paused: this.parts?.scheduler.isPaused ?? false,
      activeJobs: this.parts?.workers.size ?? 0,
      concurrency: this.concurrency,
    };
  }
}
