// graphile-worker 0.18 and pg-boss 12 need Node ≥ 22; the project runs on Node 20. The bench
// therefore runs itself (and every queue, ours included) under one Node 24 binary. On a fresh
// clone it installs that binary from the npm registry's `node` package into a cache directory:
// `npm install --prefix <dir> node@24`, with a package.json in <dir> that allows the package's
// install script (npm 11 blocks install scripts unless allowScripts names them).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Override with BENCH_NODE_DIR; BENCH_NODE names a binary to use as is. */
export const NODE_CACHE_DIR = process.env.BENCH_NODE_DIR ?? path.join(REPO_ROOT, 'node_modules', '.cache', 'bench-node24');

export function majorVersion(version = process.version): number {
  return Number(/^v?(\d+)/.exec(version)?.[1] ?? 0);
}

function installedBinary(): string | null {
  if (process.env.BENCH_NODE) return process.env.BENCH_NODE;
  const binary = path.join(NODE_CACHE_DIR, 'node_modules', '.bin', 'node');
  return existsSync(binary) ? binary : null;
}

function install(): string {
  mkdirSync(NODE_CACHE_DIR, { recursive: true });
  const manifest = path.join(NODE_CACHE_DIR, 'package.json');
  if (!existsSync(manifest)) {
    writeFileSync(manifest, `${JSON.stringify({ name: 'bench-node24', private: true, allowScripts: { node: true } }, null, 2)}\n`);
  }
  console.error(`bench: Node ${process.version} is too old for graphile-worker 0.18 and pg-boss 12; installing node@24 into ${NODE_CACHE_DIR}`);
  // Under `npm run`, npm_execpath is the npm that started us; run it with this node.
  const npm = process.env.npm_execpath ? [process.execPath, process.env.npm_execpath] : ['npm'];
  const result = spawnSync(npm[0]!, [...npm.slice(1), 'install', '--prefix', NODE_CACHE_DIR, 'node@24', '--no-audit', '--no-fund'], { stdio: ['ignore', 'inherit', 'inherit'] });
  const binary = installedBinary();
  if (result.status !== 0 || !binary) throw new Error(`bench: installing node@24 failed (npm exit ${result.status}); set BENCH_NODE to a Node ≥ 22 binary`);
  return binary;
}

/**
 * Under Node ≥ 22 returns false: go on. Otherwise re-runs this script under Node 24 (installing it
 * if needed), forwarding arguments, output and the exit code, and returns true.
 */
export async function reexecUnderNode24(): Promise<boolean> {
  if (majorVersion() >= 22) return false;
  const binary = installedBinary() ?? install();
  const child = spawn(binary, [...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit', env: { ...process.env, BENCH_PARENT_NODE: process.version } });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
  const code = await new Promise<number>((resolve) => child.on('exit', (c, s) => resolve(c ?? (s ? 1 : 0))));
  process.exitCode = code;
  return true;
}
