import pg from 'pg';
import type { Logger } from '../log.js';

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

// bigint columns (job_id, chat_id) come back as numbers: every id we handle fits in 2^53, and a
// string-typed id leaking into JSON results or arithmetic is a worse bug than the range limit.
pg.types.setTypeParser(pg.types.builtins.INT8, (value: string) => Number(value));

export interface PoolOptions {
  connectionString: string;
  max: number;
  applicationName: string;
  log: Logger;
}

export function createPool(options: PoolOptions): Pool {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max,
    application_name: options.applicationName,
    // A query that hangs on a dead TCP connection would stall a worker slot forever.
    keepAlive: true,
    connectionTimeoutMillis: 10_000,
    idleTimeoutMillis: 30_000,
  });
  // An idle client whose server went away emits 'error' on the pool; without a listener that
  // would crash the process. The next checkout gets a fresh connection.
  pool.on('error', (error) => options.log.warn({ err: error.message }, 'idle database connection lost'));
  return pool;
}

/** The connection string with its password replaced, safe for logs. */
export function redactConnectionString(connectionString: string): string {
  try {
    const url = new URL(connectionString);
    if (url.password) url.password = '***';
    for (const key of [...url.searchParams.keys()]) {
      if (/pass|secret|token/i.test(key)) url.searchParams.set(key, '***');
    }
    return url.toString();
  } catch {
    return '(unparseable connection string)';
  }
}
