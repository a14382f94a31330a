// Whether the database answers, for /health.
import type { QueryConfig } from 'pg';
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
