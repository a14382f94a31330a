// Which PostgreSQL backends serve a given process: its TCP sockets' local ports (from /proc), which
// pg_stat_activity shows as client_port. Lets the harness wait until a frozen daemon has no
// statement running before it reads what the daemon left behind.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import type { Pool } from 'pg';
import { sleep } from './util.js';

/** Local TCP ports of the sockets process `pid` holds open (empty if it is gone). */
export function localPortsOf(pid: number): number[] {
  const inodes = new Set<string>();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      const target = (() => { try { return readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { return ''; } })();
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (inode) inodes.add(inode);
    }
  } catch {
    return [];
  }
  const ports: number[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try { text = readFileSync(table, 'utf8'); } catch { continue; }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length > 9 && inodes.has(fields[9]!)) ports.push(parseInt(fields[1]!.split(':')[1]!, 16));
    }
  }
  return ports;
}

/**
 * Waits (up to `timeoutMs`) until none of process `pid`'s backends is running a statement. A frozen
 * client's statement already sent still runs and, outside a transaction, commits; inside one, it
 * waits for a COMMIT that never comes and is rolled back at the kill. Resolves true once settled.
 */
export async function backendsSettled(pool: Pool, pid: number, timeoutMs = 5_000): Promise<boolean> {
  const ports = localPortsOf(pid);
  const deadline = Date.now() + timeoutMs;
  // Twice in a row: a statement written just before the freeze may not have been read yet.
  let quiet = 0;
  for (;;) {
    const { rows } = await pool.query(`SELECT count(*)::int AS active FROM pg_stat_activity WHERE client_port = ANY($1::int[]) AND state = 'active'`, [ports]);
    quiet = rows[0].active === 0 ? quiet + 1 : 0;
    if (quiet >= 2) return true;
    if (Date.now() > deadline) return false;
    await sleep(25);
  }
}
