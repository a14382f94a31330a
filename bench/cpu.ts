// CPU time from /proc/<pid>/stat: of one of the bench's own processes, and of the PostgreSQL
// backends serving a database, which only works when the server runs on this machine (embedded, or
// a local one in the same pid namespace). A pid that /proc does not show as that database's backend
// makes the reading unavailable, with the reason, rather than a number from another process.
import { readFileSync } from 'node:fs';
import type { Server } from './db.js';

/**
 * Every producer connection's name (producers.ts), so that PostgreSQL CPU per job leaves the
 * bench's inserts and polling out. Here rather than there: this file must load without the peers.
 */
export const PRODUCER_APPLICATION_NAME = 'bench producer';

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on Linux). */
export const USER_HZ = 100;

/** utime + stime of a live process so far, in clock ticks; throws when /proc cannot show it. */
export function processTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name is in brackets and may hold spaces; the fields after it are fixed.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** The sum over pids; a process that ended (an idle pool connection) took its CPU with it and counts 0. */
export function cpuTicks(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      ticks += processTicks(pid);
    } catch {
      // ended
    }
  }
  return ticks;
}

export type PgCpu =
  /** us: CPU over the window; exited: backends seen at the start and gone at the end, whose CPU since the start is lost. */
  | { us: number; backends: number; exited: number }
  | { unavailable: string };

interface Sample {
  ticks: Map<number, number>;
  /** Why these pids cannot be read as this server's backends, if so. */
  problem?: string;
}

/**
 * Starts a window over the client backends of `database` (the bench's producer connection left
 * out: its inserts and polling are the bench's, not the queue's; autovacuum workers too: they come
 * and go between samples). The function returned ends it: CPU of the union of the backends seen at
 * both ends, each counted from the start (or from its birth, if it connected in between).
 */
export async function pgCpuWindow(server: Server, database: string): Promise<() => Promise<PgCpu>> {
  const before = await sample(server, database);
  return async () => {
    const after = await sample(server, database);
    const problem = before.problem ?? after.problem;
    if (problem) return { unavailable: problem };
    if (before.ticks.size === 0 && after.ticks.size === 0) return { unavailable: `no backend of ${database} seen` };
    let ticks = 0;
    let exited = 0;
    for (const [pid, start] of before.ticks) {
      const end = after.ticks.get(pid);
      if (end === undefined) exited++;
      else ticks += end - start;
    }
    for (const [pid, end] of after.ticks) if (!before.ticks.has(pid)) ticks += end;
    return { us: (ticks * 1e6) / USER_HZ, backends: new Set([...before.ticks.keys(), ...after.ticks.keys()]).size, exited };
  };
}

async function sample(server: Server, database: string): Promise<Sample> {
  const { rows } = await server.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend' AND application_name IS DISTINCT FROM $2`,
    [database, PRODUCER_APPLICATION_NAME],
  );
  const ticks = new Map<number, number>();
  for (const { pid } of rows) {
    const seen = backendTicks(pid, database);
    if (typeof seen === 'number') ticks.set(pid, seen);
    else if (seen !== 'ended') return { ticks, problem: seen };
  }
  // Not one of them here: a server elsewhere, whose pids this machine does not have.
  if (rows.length > 0 && ticks.size === 0) return { ticks, problem: `none of ${database}'s ${rows.length} backends is in /proc here (PostgreSQL not on this machine?)` };
  return { ticks };
}

/**
 * A backend's ticks, 'ended' if it left between pg_stat_activity and /proc, or why this pid here is
 * not known to be that backend. PostgreSQL titles its backends "postgres: user database host …".
 */
function backendTicks(pid: number, database: string): number | 'ended' | string {
  let title: string;
  try {
    title = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // ENOENT for a pid PostgreSQL just listed: it ended, or it is not this machine's process.
    return code === 'ENOENT' ? 'ended' : `/proc/${pid} not readable (${code})`;
  }
  if (!title.startsWith('postgres: ') || !title.split(/\s+/).includes(database)) {
    return `pid ${pid} here is not ${database}'s backend (PostgreSQL on another machine or in another pid namespace)`;
  }
  try {
    return processTicks(pid);
  } catch {
    return 'ended';
  }
}
