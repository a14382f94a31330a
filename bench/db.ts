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
  adminUrl: string;
  urlFor(database: string): string;
  query<T extends pg.QueryResultRow = any>(sql: string, params?: unknown[]): Promise<pg.QueryResult<T>>;
  /** A fresh database, optionally cloned from a template; dropped in close(). */
  createDatabase(name: string, template?: string): Promise<string>;
  dropDatabase(name: string): Promise<void>;
  close(): Promise<void>;
}

const PREFIX = `bench_${process.pid}_`;

export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

/** Starts (or connects to) the server. */
export async function openServer(): Promise<Server> {
  let embedded: EmbeddedDatabase | null = null;
  let dataDir: string | null = null;
  let adminUrl = process.env.DATABASE_URL;
  let origin = 'DATABASE_URL';
  if (!adminUrl) {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'bq-bench-pg-'));
    const start = () => startEmbeddedPostgres({ dataDir: dataDir!, port: 0, log: silentLogger(), ephemeral: true, database: 'postgres' });
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
  const created = new Set<string>();

  const server: Server = {
    origin,
    version,
    autovacuum,
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
    async close() {
      for (const name of created) await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
      await admin.end();
      await embedded?.stop();
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
  return server;
}
