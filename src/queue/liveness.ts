import { EventEmitter } from 'node:events';
import { randomInt } from 'node:crypto';
import pg from 'pg';
import { unlessAborted } from '../abort.js';
import { databaseRetryWaitMs } from '../db/pool.js';
import { errorMessage, type Logger } from '../log.js';
import { sleep } from '../time.js';
import { LOCK_NAMESPACE } from './daemon-lock.js';

export { DAEMON_HOLDS_LOCK, LOCK_NAMESPACE } from './daemon-lock.js';

/**
 * A daemon's pulse: a session advisory lock held on a connection of its own. PostgreSQL releases
 * it the moment that connection ends — a kill -9, an OOM kill, a crashed host once TCP keepalive
 * notices — so other daemons can tell a dead one without any heartbeat traffic. Emits
 * 'acquired' (first: boolean) and 'lost'.
 */
export class LivenessLock extends EventEmitter {
  readonly lockKey = randomInt(1, 2 ** 31 - 1);
  private client: pg.Client | null = null;
  private closing = false;
  private isHeld = false;
  /** When the lock was last (re)acquired; rescuing others waits until it has been held a while. */
  heldSince: number | null = null;
  private acquiredOnce = false;
  private lostOnce = false;

  constructor(
    private readonly connectionString: string,
    private readonly log: Logger,
  ) {
    super();
  }

  get held(): boolean {
    return this.isHeld;
  }

  /** True once the lock has been lost and taken again (a database restart, a dropped connection). */
  get reacquired(): boolean {
    return this.lostOnce;
  }

  /**
   * Resolves once the lock is held; keeps retrying while the database is unreachable. Rejects as
   * soon as `signal` aborts (a daemon told to stop while its database is still away).
   */
  async start(signal?: AbortSignal): Promise<void> {
    for (let attempt = 1; !this.closing; attempt++) {
      signal?.throwIfAborted();
      try {
        await this.acquire(signal);
        return;
      } catch (error) {
        signal?.throwIfAborted();
        const waitMs = databaseRetryWaitMs(attempt);
        this.log.warn({ err: errorMessage(error), attempt, waitMs }, 'liveness lock not acquired; retrying');
        await sleep(waitMs, signal);
      }
    }
  }

  async stop(): Promise<void> {
    this.closing = true;
    this.isHeld = false;
    await this.client?.end().catch(() => undefined);
    this.client = null;
  }

  private async acquire(signal?: AbortSignal): Promise<void> {
    const client = new pg.Client({ connectionString: this.connectionString, application_name: 'broadcast-queued liveness', keepAlive: true, connectionTimeoutMillis: 10_000 });
    client.on('error', () => undefined);
    try {
      await unlessAborted(
        (async () => {
          await client.connect();
          // Server-side keepalives: a host that vanished without closing its socket releases the
          // lock in about 25 s instead of the kernel default of two hours.
          await client.query('SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3');
          await client.query('SELECT pg_advisory_lock($1, $2)', [LOCK_NAMESPACE, this.lockKey]);
        })(),
        signal,
      );
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    this.client = client;
    this.isHeld = true;
    this.heldSince = Date.now();
    const first = !this.acquiredOnce;
    this.acquiredOnce = true;
    client.once('end', () => this.onLost(client));
    client.on('error', (error) => this.log.warn({ err: errorMessage(error) }, 'liveness connection error'));
    this.emit('acquired', first);
  }

  private onLost(client: pg.Client): void {
    if (this.client !== client || this.closing) return;
    this.isHeld = false;
    this.heldSince = null;
    this.client = null;
    this.lostOnce = true;
    this.log.warn('liveness lock lost with its connection; reacquiring');
    this.emit('lost');
    void this.start();
  }
}
