// graphile-worker 0.18 and pg-boss 12 need Node ≥ 22; the project runs on Node 20. The bench
// therefore runs itself (and every queue, ours included) under one Node 24 binary. On a fresh
// clone it installs that binary from the npm registry's `node` package into a cache directory:
// `npm install --prefix <dir> node@24`, with a package.json in <dir> that allows the package's
// install script (npm 11 blocks install scripts unless allowScripts names them). `--daemon-node=20`
// (or 22, 24) runs our daemon alone under another major, installed the same way (nodeBinary).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const cacheDir = (major: number) => path.join(REPO_ROOT, 'node_modules', '.cache', `bench-node${major}`);
/** Override with BENCH_NODE_DIR; BENCH_NODE names a binary to use as is. */
export const NODE_CACHE_DIR = process.env.BENCH_NODE_DIR ?? cacheDir(24);

export function majorVersion(version = process.version): number {
  return Number(/^v?(\d+)/.exec(version)?.[1] ?? 0);
}

function installedBinary(dir: string): string | null {
  const binary = path.join(dir, 'node_modules', '.bin', 'node');
  return existsSync(binary) ? binary : null;
}

function install(dir: string, major: number): string {
  mkdirSync(dir, { recursive: true });
  const manifest = path.join(dir, 'package.json');
  if (!existsSync(manifest)) {
    writeFileSync(manifest, `${JSON.stringify({ name: `bench-node${major}`, private: true, allowScripts: { node: true } }, null, 2)}\n`);
  }
  console.error(`bench: installing node@${major} into ${dir}`);
  // Under `npm run`, npm_execpath is the npm that started us; run it with this node.
  const npm = process.env.npm_execpath ? [process.execPath, process.env.npm_execpath] : ['npm'];
  const result = spawnSync(npm[0]!, [...npm.slice(1), 'install', '--prefix', dir, `node@${major}`, '--no-audit', '--no-fund'], { stdio: ['ignore', 'inherit', 'inherit'] });
  const binary = installedBinary(dir);
  if (result.status !== 0 || !binary) throw new Error(`bench: installing node@${major} failed (npm exit ${result.status})`);
  return binary;
}

/** A Node binary of this major version: this process's own if it is one, else installed from the registry. */
export function nodeBinary(major: number): string {
  if (majorVersion() === major) return process.execPath;
  const dir = cacheDir(major);
  return installedBinary(dir) ?? install(dir, major);
}

/**
 * Under Node ≥ 22 returns false: go on. Otherwise re-runs this script under Node 24 (installing it
 * if needed), forwarding arguments, output and the exit code, and returns true.
 */
export async function reexecUnderNode24(): Promise<boolean> {
  if (majorVersion() >= 22) return false;
  if (!process.env.BENCH_NODE) console.error(`bench: Node ${process.version} is too old for graphile-worker 0.18 and pg-boss 12`);
  const binary = process.env.BENCH_NODE ?? installedBinary(NODE_CACHE_DIR) ?? install(NODE_CACHE_DIR, 24);
  const child = spawn(binary, [...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit', env: { ...process.env, BENCH_PARENT_NODE: process.version } });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
  const code = await new Promise<number>((resolve) => child.on('exit', (c, s) => resolve(c ?? (s ? 1 : 0))));
  process.exitCode = code;
  return true;
}
