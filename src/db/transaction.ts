import type { Pool, PoolClient } from './pool.js';

export interface TransactionOptions {
  /** The statement that opens it, e.g. 'BEGIN READ ONLY'. Defaults to 'BEGIN'. */
  begin?: string;
  /** Settings for this transaction only (SET LOCAL), e.g. 'statement_timeout = 2000'. */
  setLocal?: string[];
}

/** Runs `body` in one transaction on one pooled connection: committed if it resolves, rolled back if it throws. */
export async function inTransaction<T>(pool: Pool, body: (client: PoolClient) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query(options.begin ?? 'BEGIN');
    // One round trip for every setting: these wrap hot, short statements (the ledger cleaner's batches).
    if (options.setLocal?.length) await client.query(options.setLocal.map((s) => `SET LOCAL ${s}`).join('; '));
    const result = await body(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}
