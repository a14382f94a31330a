import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config/load.js';
import { createPool, type Pool } from '../db/pool.js';
import type { EmbeddedDatabase } from '../db/embedded.js';
import { createLogger, type Logger } from '../log.js';

export interface CliContext {
  config: Config;
  pool: Pool;
  log: Logger;
  connectionString: string;
}

/**
 * Opens the database bqctl works on: DATABASE_URL, or the daemon's embedded PostgreSQL. bqctl
 * must work while the daemon is down, so if the embedded server is not running it is started
 * for the command and stopped after.
 */
export async function withDatabase<T>(config: Config, fn: (ctx: CliContext) => Promise<T>): Promise<T> {
  const log = createLogger({ level: config.logLevel === 'info' ? 'warn' : config.logLevel, name: 'bqctl', destination: process.stderr as never });
  let embedded: EmbeddedDatabase | null = null;
  let connectionString = config.databaseUrl;
  if (!connectionString) {
    connectionString = await runningEmbeddedUrl(config.dataDir);
    if (!connectionString) {
      // Loaded only here: most commands run against DATABASE_URL or a running daemon's server.
      const { startEmbeddedPostgres } = await import('../db/embedded.js');
      embedded = await startEmbeddedPostgres({ dataDir: config.dataDir, port: config.embeddedPort, log });
      connectionString = embedded.connectionString;
    }
  }
  const pool = createPool({ connectionString, max: 4, applicationName: 'bqctl', log });
  try {
    return await fn({ config, pool, log, connectionString });
  } finally {
    await pool.end();
    await embedded?.stop();
  }
}

/** The URL of an embedded PostgreSQL already running in the data directory, if there is one. */
async function runningEmbeddedUrl(dataDir: string): Promise<string | undefined> {
  const pidFile = await readFile(path.join(dataDir, 'pg', 'postmaster.pid'), 'utf8').catch(() => null);
  if (!pidFile) return undefined;
  const [pidLine, , , portLine] = pidFile.split('\n');
  const pid = Number(pidLine);
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return undefined;
  }
  const password = (await readFile(path.join(dataDir, 'password'), 'utf8')).trim();
  return `postgresql://postgres:${encodeURIComponent(password)}@127.0.0.1:${Number(portLine)}/broadcast_queued`;
}
