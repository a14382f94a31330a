import type { Pool, PoolClient } from './pool.js';
import { inTransaction } from './transaction.js';

/** How long a status, statistics or metrics read may run on the server. Defaults to 5 seconds. */
export const READ_TIMEOUT_MS = 5_000;

/**
 * Runs a group of reads in one READ ONLY transaction whose statements the server cancels after
 * `timeoutMs` (statement_timeout). A client-side timeout only stops waiting: the scan it abandoned
 * kept running on the server, so a slow scrape repeated every 15 s piled up on the database.
 */
export function boundedRead<T>(pool: Pool, read: (client: PoolClient) => Promise<T>, timeoutMs = READ_TIMEOUT_MS): Promise<T> {
  return inTransaction(pool, read, { begin: 'BEGIN READ ONLY', setLocal: [`statement_timeout = ${Math.max(1, Math.ceil(timeoutMs))}`] });
}
