import pg from 'pg';
import type { Logger } from '../log.js';
import { cappedBackoffMs } from '../time.js';

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

// bigint columns (job_id, chat_id) come back as numbers: every id we handle fits in 2^53, and a
// string-typed id leaking into JSON results or arithmetic is a worse bug than the range limit.
pg.types.setTypeParser(pg.types.builtins.INT8, (value: string) => Number(value));
// bigint[] (depends_on) the same way, element by element; 1016 is int8[]'s type oid.
const INT8_ARRAY_OID = 1016 as unknown as typeof pg.types.builtins.INT8;
const parseInt8ArrayText = pg.types.getTypeParser(INT8_ARRAY_OID, 'text') as (value: string) => (string | null)[];
pg.types.setTypeParser(INT8_ARRAY_OID, (value: string) => parseInt8ArrayText(value).map((v) => (v === null ? null : Number(v))));

export interface PoolOptions {
  connectionString: string;
  max: number;
  applicationName: string;
  log: Logger;
  /** Settings for every session, as PostgreSQL's startup `options` (`-c name=value`). */
  sessionOptions?: string;
  /** An idle connection is closed after this long. Defaults to 30 s. */
  idleTimeoutMs?: number;
}

export function createPool(options: PoolOptions): Pool {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max,
    application_name: options.applicationName,
    // A query that hangs on a dead TCP connection would stall a worker slot forever.
    keepAlive: true,
    connectionTimeoutMillis: 10_000,
    ...(options.sessionOptions ? { options: options.sessionOptions } : {}),
    idleTimeoutMillis: options.idleTimeoutMs ?? 30_000,
  });
  // An idle client whose server went away emits 'error' on the pool; without a listener that
  // would crash the process. The next checkout gets a fresh connection.
  pool.on('error', (error) => options.log.warn({ err: error.message }, 'idle database connection lost'));
  return pool;
}

/**
 * The connections claims run on. Their sessions commit asynchronously: a claim is a lease, and
 * losing one in a PostgreSQL crash only makes its job run again, exactly as a daemon crash
 * would. Anything a job does that must not happen twice (a Bot API call) is preceded by a
 * synchronous commit on the main pool, which flushes the WAL up to and past the claim, so
 * at-most-once holds. What this saves is one WAL flush per claim on a durable server.
 */
export function createClaimPool(options: PoolOptions): Pool {
  return createPool({ ...options, sessionOptions: '-c synchronous_commit=off' });
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

// SQLSTATE classes and messages that mean "the database is away", not "this job is wrong":
// 08 connection exception, 57P01-57P03 shutdown / crash / cannot connect now, 53300 too many
// connections; and node-postgres's own words for a dropped or unobtainable connection.
// Except 08P01, protocol_violation: the server sends it for a statement given the wrong number of
// parameters ("bind message supplies 1 parameters, but prepared statement requires 2"), a bug
// in the SQL that would snooze its job every 5 s forever if taken for an outage.
const UNAVAILABLE_CODES = /^(08(?!P01)...|57P0[123]|53300)$/;
const UNAVAILABLE_MESSAGES = /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|connect ECONNREFUSED/;

const SOCKET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH']);

/** True when an error says the database was unreachable, so a job should wait rather than fail. */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  let code: unknown;
  let message: unknown;
  try {
    ({ code, message } = error as { code?: unknown; message?: unknown });
  } catch {
    return false; // a getter that throws: whatever this is, it is not node-postgres's error
  }
  if (typeof code === 'string' && UNAVAILABLE_CODES.test(code)) return true;
  return typeof message === 'string' && UNAVAILABLE_MESSAGES.test(message) && !/api\.telegram\.org|\/bot/.test(message);
}

/**
 * True when the same statement can be expected to succeed later: the database is unreachable, or
 * it refused for a lock conflict (SQLSTATE classes 40 and 55) or a cancelled statement (57014).
 * Only a refusal of the data itself (classes 22, 23) or a bug in the SQL is worth giving up on.
 */
export function isTransientDatabaseError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  // A socket that died under a statement ('read ECONNRESET' while the server restarted) is only
  // the database going away. isDatabaseUnavailable cannot take these codes: it also judges
  // handlers' errors, where a reset comes from the Bot API. Here every error is a statement's.
  return isDatabaseUnavailable(error) || (typeof code === 'string' && (/^(40|55)/.test(code) || code === '57014' || SOCKET_CODES.has(code)));
}

/**
 * The wait before try `attempt` (1, 2, …) of a connection or a write while the database is away,
 * ms: 200, 400, 800, then 1,000 for as long as it takes. A try is one cheap connection or
 * statement; waits growing to 4-10 s meant work resumed up to 5.7 s after the database came back
 * (the chaos suite's table), which is what the daemon is for. The listener, the liveness lock and
 * the recorder all wait this way.
 */
export function databaseRetryWaitMs(attempt: number): number {
  return cappedBackoffMs(attempt, 100, 1_000);
}
