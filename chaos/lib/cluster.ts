// The PostgreSQL a chaos run uses: an embedded server the run starts itself (so it can restart it
// and take it away), or the server at DATABASE_URL for the scenarios that leave it alone. Each
// scenario gets a database of its own, migrated before any daemon starts.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres, freePort, type EmbeddedDatabase } from '../../src/db/embedded.js';
import { createPool, type Pool } from '../../src/db/pool.js';
import { migrate } from '../../src/db/migrate.js';
import { isAlive } from '../../src/db/postmaster.js';
import { silentLogger } from '../../src/log.js';
import { sleep } from './util.js';

export interface ChaosDatabase {
  name: string;
  url: string;
  /** The chaos run's own connections (not counted as the daemons'). */
  pool: Pool;
  drop(): Promise<void>;
}

export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

export class PgServer {
  private embedded: EmbeddedDatabase | null = null;

  private constructor(
    readonly kind: 'embedded' | 'external',
    private adminUrl: string,
    private readonly dataDir: string | null,
    private readonly port: number,
  ) {}

  /** Starts an embedded PostgreSQL in dataDir on a fixed port, so it can be restarted in place. */
  static async embedded(dataDir: string): Promise<PgServer> {
    const port = await freePort();
    const server = new PgServer('embedded', '', dataDir, port);
    await server.start();
    return server;
  }

  static external(url: string): PgServer {
    return new PgServer('external', url, null, Number(new URL(url).port || 5432));
  }

  get restartable(): boolean {
    return this.kind === 'embedded';
  }

  get description(): string {
    return this.kind === 'embedded' ? `embedded PostgreSQL 17 (port ${this.port}, data in ${this.dataDir})` : `the PostgreSQL at DATABASE_URL (${new URL(this.adminUrl).host})`;
  }

  private async start(): Promise<void> {
    if (!this.dataDir) throw new Error('only the embedded PostgreSQL can be started by the chaos run');
    // Durable settings (fsync and synchronous_commit on), as in production: with
    // synchronous_commit=off a crash-restart forgets the last commits, and at-most-once cannot
    // survive that (a row marked 'sending' comes back 'pending' and is sent again).
    this.embedded = await startEmbeddedPostgres({ dataDir: this.dataDir, port: this.port, log: silentLogger(), ephemeral: false, database: 'postgres' });
    this.adminUrl = this.embedded.connectionString;
  }

  async createDatabase(name: string): Promise<ChaosDatabase> {
    await this.admin(async (c) => {
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.query(`CREATE DATABASE ${name}`);
    });
    const url = withDatabase(this.adminUrl, name);
    const pool = createPool({ connectionString: url, max: 30, applicationName: 'bq-chaos', log: silentLogger() });
    await migrate(pool, silentLogger());
    return {
      name,
      url,
      pool,
      drop: async () => {
        await pool.end().catch(() => undefined);
        await this.admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).catch(() => undefined);
      },
    };
  }

  async admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
    const client = new pg.Client({ connectionString: this.adminUrl });
    client.on('error', () => undefined);
    await client.connect();
    try {
      return await fn(client);
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /** Terminates every backend of the daemons (pool and listener) on one database; returns how many. */
  async terminateDaemonConnections(database: string): Promise<number> {
    return this.admin(async (c) => {
      const { rows } = await c.query(
        `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::int AS n
           FROM pg_stat_activity
          WHERE datname = $1 AND application_name LIKE 'broadcast-queued%' AND pid <> pg_backend_pid()`,
        [database],
      );
      return rows[0].n as number;
    });
  }

  /** Connections on one database by application, from pg_stat_activity. */
  async connections(database: string): Promise<{ daemons: number; total: number }> {
    return this.admin(async (c) => {
      const { rows } = await c.query(
        `SELECT count(*) FILTER (WHERE application_name LIKE 'broadcast-queued%')::int AS daemons, count(*)::int AS total
           FROM pg_stat_activity WHERE datname = $1`,
        [database],
      );
      return rows[0] as { daemons: number; total: number };
    });
  }

  /**
   * A crash-like restart: immediate shutdown (SIGQUIT: backends die without a checkpoint, the
   * next start replays the WAL), then start again at once. Returns the downtime in ms.
   */
  async restartQuick(): Promise<number> {
    const began = Date.now();
    const pid = await this.postmasterPid();
    if (!pid) throw new Error('no postmaster.pid: is the embedded PostgreSQL running?');
    process.kill(pid, 'SIGQUIT');
    while (isAlive(pid)) await sleep(20);
    this.embedded = null;
    await this.start();
    return Date.now() - began;
  }

  /** A clean (fast) shutdown, `awayMs` with no server at all, then a start. Returns the downtime. */
  async outage(awayMs: number, whileAway?: () => Promise<void>): Promise<number> {
    const began = Date.now();
    await this.embedded?.stop();
    this.embedded = null;
    const back = Date.now() + awayMs;
    await whileAway?.();
    await sleep(Math.max(0, back - Date.now()));
    await this.start();
    return Date.now() - began;
  }

  async stop(): Promise<void> {
    await this.embedded?.stop().catch(() => undefined);
    this.embedded = null;
  }

  private async postmasterPid(): Promise<number | null> {
    if (!this.dataDir) return null;
    const text = await readFile(path.join(this.dataDir, 'pg', 'postmaster.pid'), 'utf8').catch(() => null);
    const pid = Number(text?.split('\n')[0]);
    return pid > 0 ? pid : null;
  }
}

/**
 * Watches pg_stat_activity for a database once a second and records the daemon sessions that
 * wait on a lock, sit idle in a transaction, or run one statement for more than 3 s: the evidence
 * a hang leaves. Returns a stop function that resolves with what was seen (deduplicated).
 */
export function watchActivity(server: PgServer, database: string): () => Promise<string[]> {
  const seen = new Map<string, string>();
  let running = true;
  const loop = (async () => {
    while (running) {
      await server.admin(async (c) => {
        const { rows } = await c.query(
          `SELECT pid, application_name, state, wait_event_type, wait_event, round(extract(epoch FROM now() - query_start))::int AS secs,
                  round(extract(epoch FROM now() - xact_start))::int AS xact_secs, left(regexp_replace(query, '\\s+', ' ', 'g'), 160) AS query
             FROM pg_stat_activity
            WHERE datname = $1 AND application_name LIKE 'broadcast-queued%' AND pid <> pg_backend_pid()
              AND ((state = 'active' AND now() - query_start > interval '3 seconds')
                   OR state LIKE 'idle in transaction%' AND now() - state_change > interval '1 second'
                   OR wait_event_type = 'Lock')`,
          [database],
        );
        for (const r of rows) {
          const key = `${r.pid}:${r.query}`;
          seen.set(key, `${new Date().toISOString()} pid ${r.pid} (${r.application_name}) ${r.state}${r.wait_event_type ? ` waiting ${r.wait_event_type}/${r.wait_event}` : ''} for ${r.secs} s (xact ${r.xact_secs} s): ${r.query}`);
        }
      }).catch(() => undefined);
      await sleep(1_000);
    }
  })();
  return async () => {
    running = false;
    await loop;
    return [...seen.values()];
  };
}
