// bqctl where bytes, not flags, are the bad input: its JSON through a pipe read slowly must arrive
// whole (process.exit() once cut it at 64 KiB with exit 0), a pipe closed early (| head) must end it
// quietly, and an import with a NUL, an over-long line and an unclosed quote must reject exactly
// those lines by number and import the rest.
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Pool } from 'pg';

const BQCTL_BIN = fileURLToPath(new URL('../../../bin/bqctl', import.meta.url));
const STACK = /\n\s+at [^\n]+:\d+:\d+/;

interface Run { code: number | null; signal: NodeJS.Signals | null; stdout: Buffer; stderr: string; timedOut: boolean }

/**
 * Runs bqctl to the end of its output ('close', not 'exit'). `slow` takes each chunk on a later
 * turn of the event loop so the pipe fills; `closeAfterFirst` closes stdout after one chunk.
 */
function run(args: string[], env: Record<string, string>, options: { slow?: boolean; closeAfterFirst?: boolean } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BQCTL_BIN, ...args], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    let stderr = '';
    let timedOut = false;
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.stdout.on('data', (c: Buffer) => {
      chunks.push(c);
      if (options.closeAfterFirst) child.stdout.destroy();
      else if (options.slow) {
        child.stdout.pause();
        setImmediate(() => child.stdout.resume());
      }
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, 120_000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(chunks), stderr, timedOut });
    });
  });
}

export async function bqctlStreamChecks(pool: Pool, databaseUrl: string, dir: string): Promise<{ failures: string[]; notes: string[]; count: number }> {
  const failures: string[] = [];
  const notes: string[] = [];
  const env = { DATABASE_URL: databaseUrl };

  // Enough jobs for several MB of JSON, whatever the bad rows before left in the table.
  await pool.query(`INSERT INTO broadcast_queue_jobs (queue, job_type, payload, run_at)
    SELECT 'chaos-piped', 'send', jsonb_build_object('chat_id', g, 'message', jsonb_build_object('text', repeat('p', 300))), now() + interval '1 day'
      FROM generate_series(1, 10000) AS g`);
  const piped = await run(['list', '--json', '--queue', 'chaos-piped', '--limit', '10000'], env, { slow: true });
  let jobs = -1;
  try {
    jobs = (JSON.parse(piped.stdout.toString('utf8')) as { jobs: unknown[] }).jobs.length;
  } catch {
    // counted below
  }
  if (piped.timedOut) failures.push('bqctl list --json into a slow pipe: no end within 120 s');
  else if (piped.code !== 0 || jobs !== 10_000) failures.push(`bqctl list --json into a slow pipe: exit ${piped.code}, ${piped.stdout.length} bytes, ${jobs < 0 ? 'not valid JSON' : `${jobs} of 10000 jobs`}: ${piped.stderr.slice(0, 200)}`);
  else notes.push(`bqctl list --json into a slow pipe: ${piped.stdout.length.toLocaleString('en-US')} bytes, 10,000 jobs, exit 0`);

  const head = await run(['list', '--json', '--queue', 'chaos-piped', '--limit', '10000'], env, { closeAfterFirst: true });
  if (head.timedOut || head.signal || head.code !== 1 || STACK.test(head.stderr)) failures.push(`bqctl list --json | head: expected a quiet exit 1, got ${head.timedOut ? 'a hang' : `exit ${head.code ?? head.signal}`} ${JSON.stringify(head.stderr.slice(0, 200))}`);

  // An import with a NUL (line 1501), a 3 MB line (1700) and, in CSV, an unclosed quote (line 4).
  const jsonl = path.join(dir, 'nul-and-long.jsonl');
  const first = 7_000_000;
  await writeFile(jsonl, Array.from({ length: 2000 }, (_v, i) => {
    const line = i + 1;
    if (line === 1501) return JSON.stringify({ chat_id: first + line, tags: ['a\u0000b'] });
    if (line === 1700) return JSON.stringify({ chat_id: first + line, note: 'n'.repeat(3_000_000) });
    return JSON.stringify({ chat_id: first + line, tags: ['chaos'] });
  }).join('\n'));
  const csv = path.join(dir, 'unclosed.csv');
  await writeFile(csv, ['chat_id,tags', ...Array.from({ length: 12 }, (_v, i) => (i === 2 ? `${first + 5000 + i},"unclosed` : `${first + 5000 + i},chaos`))].join('\n'));
  const expectations: [string, number[], number][] = [[jsonl, [1501, 1700], 1998], [csv, [4], 11]];
  for (const [file, lines, imported] of expectations) {
    const r = await run(['subscribers', 'import', file, '--json'], env);
    let report: { read?: number; imported?: number; rejected?: number; rejections?: { line: number }[] } = {};
    try {
      report = JSON.parse(r.stdout.toString('utf8'));
    } catch {
      // reported below
    }
    const got = (report.rejections ?? []).map((x) => x.line);
    const name = path.basename(file);
    if (r.code !== 0 || report.imported !== imported || got.join() !== lines.join() || report.read !== imported + lines.length) {
      failures.push(`bqctl subscribers import ${name}: expected ${imported} imported and lines ${lines.join(', ')} rejected, got exit ${r.code}, ${JSON.stringify({ read: report.read, imported: report.imported, rejected: got })} ${r.stderr.slice(0, 200)}`);
    } else notes.push(`bqctl subscribers import ${name}: read ${report.read}, imported ${imported}, rejected line(s) ${lines.join(', ')}`);
  }
  const stored = (await pool.query(`SELECT count(*)::int AS n FROM broadcast_subscribers WHERE chat_id > $1 AND chat_id <= $2`, [first, first + 6000])).rows[0].n as number;
  if (stored !== 1998 + 11) failures.push(`the imports stored ${stored} subscribers, expected ${1998 + 11}`);
  return { failures, notes, count: 5 };
}
