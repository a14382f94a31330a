// The one PostgreSQL every queue runs on: DATABASE_URL if set, else an embedded server started
// with ephemeral settings (fsync off). Each scenario gets a fresh database cloned from a migrated
// template, so no queue sees another's rows, and statements are counted per database.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../src/db/embedded.js';
import { silentLogger } from '../src/log.js';

export interface Server {
  /** Where the connection string came from, for the report. */
  origin: string;
  version: string;
  /** The server's autovacuum setting ('on' / 'off'). */
  autovacuum: string;
  /** 'pg_stat_statements' when it is loaded, else the transaction counter fallback. */
  counter: 'pg_stat_statements' | 'xact_commit';
  adminUrl: string;
  urlFor(database: string): string;
  query<T extends pg.QueryResultRow = any>(sql: string, params?: unknown[]): Promise<pg.QueryResult<T>>;
  /** A fresh database, optionally cloned from a template; dropped in close(). */
  createDatabase(name: string, template?: string): Promise<string>;
  dropDatabase(name: string): Promise<void>;
  /** Statements (or transactions) run so far in each database, by name. */
  statementCounts(): Promise<Map<string, number>>;
  /** Calls so far of each statement text in one database (empty without pg_stat_statements). */
  queryCounts(database: string): Promise<Map<string, number>>;
  close(): Promise<void>;
}

const PREFIX = `bench_${process.pid}_`;

export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

/** Starts (or connects to) the server and makes statement counting available if it can. */
export async function openServer(): Promise<Server> {
  let embedded: EmbeddedDatabase | null = null;
  let dataDir: string | null = null;
  let adminUrl = process.env.DATABASE_URL;
  let origin = 'DATABASE_URL';
  if (!adminUrl) {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'bq-bench-pg-'));
    const start = () => startEmbeddedPostgres({ dataDir: dataDir!, port: 0, log: silentLogger(), ephemeral: true, database: 'postgres' });
    embedded = await start();
    // pg_stat_statements must be preloaded; startEmbeddedPostgres takes no extra flags, so set it
    // in postgresql.auto.conf and restart once (same data directory, password and port).
    const admin = new pg.Client({ connectionString: embedded.connectionString });
    await admin.connect();
    await admin.query(`ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'`);
    await admin.query(`ALTER SYSTEM SET pg_stat_statements.max = 20000`);
    await admin.end();
    await embedded.stop();
    embedded = await start();
    adminUrl = embedded.connectionString;
    origin = `embedded PostgreSQL (ephemeral: fsync=off, synchronous_commit=off, full_page_writes=off) in ${dataDir}`;
  }
  const admin = new pg.Pool({ connectionString: adminUrl, max: 4 });
  // An idle connection cut by the server's shutdown must not crash the bench.
  admin.on('error', () => undefined);
  const version = (await admin.query('SHOW server_version')).rows[0].server_version as string;
  const setting = async (name: string) => (await admin.query(`SHOW ${name}`)).rows[0][name] as string;
  if (!embedded) {
    // Durability decides what a commit costs, so the report says which kind of server this was.
    origin = `the server at DATABASE_URL (fsync=${await setting('fsync')}, synchronous_commit=${await setting('synchronous_commit')})`;
  }
  // Autovacuum decides what the planner believes about a jobs table that drained (measure/stale.ts);
  // a server with it off globally (some CI setups) never shows that, whatever the bench asks.
  const autovacuum = await setting('autovacuum');
  origin += `; autovacuum=${autovacuum}${autovacuum === 'on' ? '' : ' on the server (per-table settings cannot turn it on)'}`;
  const counter = await enableStatementCounting(admin);
  const created = new Set<string>();

  const server: Server = {
    origin,
    version,
    autovacuum,
    counter,
    adminUrl,
    urlFor: (database) => withDatabase(adminUrl!, database),
    query: (sql, params) => admin.query(sql, params as unknown[]),
    async createDatabase(name, template) {
      const full = `${PREFIX}${name}`;
      await admin.query(`DROP DATABASE IF EXISTS ${full} WITH (FORCE)`);
      await admin.query(`CREATE DATABASE ${full}${template ? ` TEMPLATE ${template}` : ''}`);
      created.add(full);
      return full;
    },
    async dropDatabase(name) {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      created.delete(name);
    },
    async statementCounts() {
      const sql = counter === 'pg_stat_statements'
        ? `SELECT d.datname, sum(s.calls)::float8 AS n FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid GROUP BY d.datname`
        : `SELECT datname, (xact_commit + xact_rollback)::float8 AS n FROM pg_stat_database WHERE datname IS NOT NULL`;
      const { rows } = await admin.query(sql);
      return new Map(rows.map((r) => [r.datname as string, Number(r.n)]));
    },
    async queryCounts(database) {
      if (counter !== 'pg_stat_statements') return new Map();
      const { rows } = await admin.query(
        `SELECT regexp_replace(s.query, '\\s+', ' ', 'g') AS query, sum(s.calls)::float8 AS calls
           FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
          WHERE d.datname = $1 GROUP BY 1`,
        [database],
      );
      return new Map(rows.map((r) => [r.query as string, Number(r.calls)]));
    },
    async close() {
      for (const name of created) await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
      await admin.end();
      await embedded?.stop();
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
  return server;
}

async function enableStatementCounting(admin: pg.Pool): Promise<Server['counter']> {
  try {
    const { rows } = await admin.query(`SHOW shared_preload_libraries`);
    if (!String(rows[0].shared_preload_libraries).includes('pg_stat_statements')) return 'xact_commit';
    await admin.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    return 'pg_stat_statements';
  } catch {
    return 'xact_commit';
  }
}
