import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createPool, type Pool } from '../../src/db/pool.js';
import { inTransaction } from '../../src/db/transaction.js';
import { silentLogger } from '../../src/log.js';

export interface TestDatabase {
  url: string;
  name: string;
  pool: Pool;
  /** Closes the pool and drops the database, even with connections still open. */
  drop(): Promise<void>;
}

function serverUrl(): string {
  const url = process.env.BQ_TEST_SERVER_URL;
  if (!url) throw new Error('run the tests through `npm test` (test/run.ts sets BQ_TEST_SERVER_URL)');
  return url;
}

export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: serverUrl() });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** A fresh, migrated database of its own, cloned from the template the runner migrated. */
export async function createTestDatabase(options: { migrated?: boolean } = {}): Promise<TestDatabase> {
  const name = `bq_t_${randomBytes(5).toString('hex')}`;
  const template = options.migrated === false ? 'template0' : process.env.BQ_TEST_TEMPLATE;
  await admin((c) => c.query(`CREATE DATABASE ${name} TEMPLATE ${template}`));
  const url = withDatabase(serverUrl(), name);
  const pool = createPool({ connectionString: url, max: 10, applicationName: 'bq-test', log: silentLogger() });
  return {
    url,
    name,
    pool,
    async drop() {
      await pool.end().catch(() => undefined);
      await admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
}

/**
 * Runs `sql` in a transaction that opts out of the insert trigger's hand-over to idle daemons
 * (sql/0025_idle_slots.sql): for a test of what the claim does with the jobs.
 */
export function queryWithoutHandOver(db: TestDatabase, sql: string, params: unknown[] = []): Promise<pg.QueryResult> {
  return inTransaction(db.pool, (client) => client.query(sql, params), { setLocal: ['broadcast_queue.hand_over = off'] });
}
