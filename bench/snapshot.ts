// The bench runs for up to twenty minutes and starts processes throughout (daemons, workers).
// Anyone rebuilding dist/ meanwhile (npm test does) would change the code under measurement
// halfway, so the bench first copies the build it was started with (dist/src, dist/bench, bin,
// sql, package.json; node_modules linked) and runs every process from that copy.
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout the bench was started from (RESULTS.md and the git revision belong to it). */
export const REPO_ROOT = process.env.BENCH_REPO ?? fileURLToPath(new URL('../../', import.meta.url));

/** Re-runs this script from a private copy of the build and returns true; false inside the copy. */
export async function reexecFromSnapshot(): Promise<boolean> {
  if (process.env.BENCH_REPO) return false;
  const copy = mkdtempSync(path.join(os.tmpdir(), 'bq-bench-build-'));
  for (const part of ['dist/src', 'dist/bench', 'bin', 'sql', 'package.json']) {
    cpSync(path.join(REPO_ROOT, part), path.join(copy, part), { recursive: true });
  }
  symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(copy, 'node_modules'));
  const script = path.join(copy, 'dist', 'bench', path.basename(process.argv[1]!));
  const child = spawn(process.execPath, [...process.execArgv, script, ...process.argv.slice(2)], { stdio: 'inherit', env: { ...process.env, BENCH_REPO: REPO_ROOT } });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
  process.exitCode = await new Promise<number>((resolve) => child.on('exit', (c, s) => resolve(c ?? (s ? 1 : 0))));
  rmSync(copy, { recursive: true, force: true });
  return true;
}
