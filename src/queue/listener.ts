import { EventEmitter } from 'node:events';
import pgListen, { type Subscriber } from 'pg-listen';
import { unlessAborted } from '../abort.js';
import { databaseRetryWaitMs } from '../db/pool.js';
import { errorMessage, type Logger } from '../log.js';
import { sleep } from '../time.js';
import { ASSIGNED_CHANNEL } from './idle-slots.js';

// pg-listen is CommonJS with an ES-style default export.
const createSubscriber = pgListen.default;

export const NOTIFY_CHANNEL = 'broadcast_queue';
/** A schedule was added, resumed or brought forward (sql/0023): the ticker re-reads. */
export const SCHEDULES_CHANNEL = 'broadcast_queue_schedules';

/**
 * How often the LISTEN connection is checked with a statement (pg-listen's paranoid check), which
 * reconnects when the check fails or gets no answer within LISTEN_CHECK_TIMEOUT_MS. A connection
 * that died quietly costs latency only: the sweep claims due jobs and feeds the schedule ticker
 * every 30 s without any notification. Every 2 minutes keeps an idle daemon at about 2.6
 * statements a minute (issue 17: at most 3; the sweep is 2 of them).
 */
export const LISTEN_CHECK_MS = 120_000;
/**
 * Without an answer in this time the check fails. Without it, a check on a half-open connection
 * (the server gone without a FIN) waited for TCP's retransmissions to give up, about 15 minutes.
 */
const LISTEN_CHECK_TIMEOUT_MS = 15_000;

/** pg-listen's error when it could not re-issue LISTEN after a reconnect, after which it stops trying. */
const GAVE_UP = /^Re-initializing the PostgreSQL notification client after connection loss failed/;

/**
 * The dedicated LISTEN connection. Events: 'notification' (queue name), 'schedules' (a schedule
 * changed), 'connected' (first time and after every reconnect: notifications sent meanwhile were
 * lost, so the scheduler claims and the ticker re-reads), 'disconnected'.
 */
export class Listener extends EventEmitter {
  private subscriber: Subscriber | null = null;
  private isConnected = false;
  private closing = false;

  constructor(
    private readonly connectionString: string,
    private readonly log: Logger,
    /** How often pg-listen checks the connection is still alive: see LISTEN_CHECK_MS. */
    private readonly checkIntervalMs = LISTEN_CHECK_MS,
  ) {
    super();
  }

  get connected(): boolean {
    return this.isConnected;
  }

  /**
   * Resolves once LISTEN is active; keeps retrying while the database is unreachable. Rejects as
   * soon as `signal` aborts (a daemon told to stop while its database is still away).
   */
  async start(signal?: AbortSignal): Promise<void> {
    for (let attempt = 1; !this.closing; attempt++) {
      signal?.throwIfAborted();
      const subscriber = this.createSubscriber();
      try {
        await unlessAborted(
          (async () => {
            await subscriber.connect();
            await subscriber.listenTo(NOTIFY_CHANNEL);
            await subscriber.listenTo(SCHEDULES_CHANNEL);
            await subscriber.listenTo(ASSIGNED_CHANNEL);
          })(),
          signal,
        );
        // stop() ran while this connected (a start-over has no signal): it could not close this one.
        if (this.closing) {
          await subscriber.close().catch(() => undefined);
          return;
        }
        this.subscriber = subscriber;
        this.markConnected();
        return;
      } catch (error) {
        // pg-listen only reconnects a connection that once succeeded, so a database that is down
        // at start is retried here with a fresh subscriber.
        await subscriber.close().catch(() => undefined);
        signal?.throwIfAborted();
        const waitMs = databaseRetryWaitMs(attempt);
        this.log.warn({ err: errorMessage(error), attempt, waitMs }, 'listener could not connect; retrying');
        await sleep(waitMs, signal);
      }
    }
  }

  private createSubscriber(): Subscriber {
    const subscriber = createSubscriber(
      { connectionString: this.connectionString, application_name: 'broadcast-queued listener', query_timeout: LISTEN_CHECK_TIMEOUT_MS },
      {
        // pg-listen's default retryTimeout (3 s) stops reconnecting for good after a short
        // outage; 0 disables the timeout, so it retries forever with the backoff below.
        retryTimeout: 0,
        retryLimit: Infinity,
        retryInterval: databaseRetryWaitMs,
        paranoidChecking: this.checkIntervalMs,
        parse: (payload: string) => payload,
      },
    );
    subscriber.notifications.on(NOTIFY_CHANNEL, (queue: string) => this.emit('notification', queue));
    subscriber.notifications.on(SCHEDULES_CHANNEL, () => this.emit('schedules'));
    subscriber.notifications.on(ASSIGNED_CHANNEL, (payload: string) => this.emit('assigned', payload));
    // pg-listen emits 'connected' after a reconnect only once it has re-issued LISTEN.
    subscriber.events.on('connected', () => {
      if (this.subscriber === subscriber) this.markConnected();
    });
    subscriber.events.on('reconnect', (attempt: number) => {
      if (this.isConnected) {
        this.isConnected = false;
        this.emit('disconnected');
      }
      if (attempt === 1 || attempt % 10 === 0) this.log.warn({ attempt }, 'listener reconnecting');
    });
    // Without this listener an 'error' event would crash the process.
    subscriber.events.on('error', (error: Error) => {
      if (this.closing) return;
      this.log.error({ err: errorMessage(error) }, 'listener error');
      if (this.subscriber === subscriber && GAVE_UP.test(error.message)) void this.startOver(subscriber);
    });
    return subscriber;
  }

  /**
   * pg-listen gives up for good when re-issuing LISTEN after a reconnect fails (the server went
   * away again, or the statement timed out): it keeps a client that is connected and listens to
   * nothing, so no notification would arrive until a restart. Start over with a fresh subscriber.
   */
  private async startOver(broken: Subscriber): Promise<void> {
    this.subscriber = null;
    if (this.isConnected) {
      this.isConnected = false;
      this.emit('disconnected');
    }
    await broken.close().catch(() => undefined);
    await this.start().catch((error) => this.log.error({ err: errorMessage(error) }, 'listener could not start over'));
  }

  private markConnected(): void {
    this.isConnected = true;
    this.log.info('listener connected');
    this.emit('connected');
  }

  async stop(): Promise<void> {
    this.closing = true;
    this.isConnected = false;
    await this.subscriber?.close().catch(() => undefined);
  }
}
