// Whether the database answers: /health's SELECT 1, and what bqctl doctor asks of the server.
import pg, { type QueryConfig } from 'pg';
import type { Pool } from './pool.js';

// node-postgres cancels its wait (not the server's work) after query_timeout; its types omit the key.
export function withTimeout(text: string, timeoutMs: number): QueryConfig {
  return { text, query_timeout: timeoutMs } as QueryConfig;
}

export interface DatabaseCheck {
  reachable: boolean;
  latencyMs: number | null;
  /** Why it is unreachable (for logs: it may name hosts, so /health does not show it). */
  error?: string;
}

/** Runs SELECT 1, giving up after timeoutMs (a hung connect counts too). */
export async function checkDatabase(pool: Pool, timeoutMs = 2_000): Promise<DatabaseCheck> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const query = pool.query(withTimeout('SELECT 1', timeoutMs));
  query.catch(() => undefined);
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([query, timeout]);
    return { reachable: true, latencyMs: Math.round((performance.now() - started) * 100) / 100 };
  } catch (error) {
    return { reachable: false, latencyMs: null, error: error instanceof Error ? error.message : String(error) };
  } finally {
    clearTimeout(timer);
  }
}

/** The server's version and the database the pool is connected to. */
export async function serverIdentity(pool: Pool): Promise<{ version: string; database: string }> {
  const { rows } = await pool.query(`SELECT current_setting('server_version') AS version, current_database() AS db`);
  return { version: rows[0].version, database: rows[0].db };
}

/** Of the triggers `names` on `table`: true for each enabled, false for each disabled; missing ones are absent. */
export async function triggerStates(pool: Pool, table: string, names: readonly string[]): Promise<Map<string, boolean>> {
  const { rows } = await pool.query(
    `SELECT tgname, tgenabled <> 'D' AS enabled FROM pg_trigger
      WHERE tgrelid = to_regclass($1) AND tgname = ANY($2::text[])`,
    [table, names],
  );
  return new Map(rows.map((r) => [r.tgname as string, r.enabled as boolean]));
}

/**
 * LISTENs on `channel` on a connection of its own to `listenUrl`, NOTIFYs `payload` through the
 * pool, and resolves with the milliseconds it took to arrive, or null when it did not within
 * `timeoutMs`. A connection or a statement that fails rejects.
 */
export async function notifyRoundTripMs(pool: Pool, listenUrl: string, channel: string, payload: string, timeoutMs: number, applicationName: string): Promise<number | null> {
  const listener = new pg.Client({ connectionString: listenUrl, application_name: applicationName });
  listener.on('error', () => undefined);
  let timer: NodeJS.Timeout | undefined;
  try {
    await listener.connect();
    await listener.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
    const heard = new Promise<number | null>((resolve) => {
      const sent = Date.now();
      listener.on('notification', (msg) => {
        if (msg.channel === channel && msg.payload === payload) resolve(Date.now() - sent);
      });
      timer = setTimeout(() => resolve(null), timeoutMs);
    });
    await pool.query(`SELECT pg_notify($1, $2)`, [channel, payload]);
    return await heard;
  } finally {
    clearTimeout(timer);
    await listener.end().catch(() => undefined);
  }
}
