// Runs the real bin/bqctl as a child process, as an operator would, and collects what it printed.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { runBqctl as runProgram } from '../../src/cli/program.js';

export interface BqctlResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

const BIN = fileURLToPath(new URL('../../../bin/bqctl', import.meta.url));

/**
 * `env` is the whole environment besides PATH (so a developer's own DATABASE_URL or LOG_LEVEL
 * cannot leak in). A child still running after 120 s is killed so a hang fails the test instead
 * of stalling the suite; that is a safety net, not an assertion about speed.
 */
export function runBqctl(args: string[], env: Record<string, string> = {}, stdin?: string | Buffer, onStdout?: (soFar: string) => void): Promise<BqctlResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      onStdout?.(stdout);
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const guard = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(guard);
      resolve({ code, stdout, stderr });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(stdin ?? '');
  });
}

/** Parses stdout as JSON, with the whole output in the error if it is not. */
export function json<T = any>(result: BqctlResult): T {
  try {
    return JSON.parse(result.stdout) as T;
  } catch {
    throw new Error(`stdout is not JSON (exit ${result.code}):\n${result.stdout}\nstderr:\n${result.stderr}`);
  }
}

/**
 * Runs bqctl inside this process, for a check that ends before any database is opened: a usage
 * error (exit 2), --help, --version. A child process costs ~0.3-1 s of a shared machine's CPU; this
 * costs a few ms. A command that gets past its argument checks fails with exit 1 instead of running.
 */
export async function bqctlInProcess(args: string[], env: Record<string, string> = {}): Promise<BqctlResult> {
  let stdout = '';
  let stderr = '';
  const io = { stdout: (text: string) => void (stdout += text), stderr: (text: string) => void (stderr += text), env: { PATH: process.env.PATH ?? '', ...env } };
  const code = await runProgram(args, io, { database: false });
  return { code, stdout, stderr };
}
