// Our daemon as the operator runs it: bin/broadcast-queued in a child process (under the bench's
// Node), configured only through its environment, its JSON log lines read from stdout.
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { profilingArgs, startChild, type Child } from './child.js';

export const BENCH_TOKEN = '123456:BENCH-token-abcdefghijklmnopqrstuvwx';
const BIN = fileURLToPath(new URL('../../bin/broadcast-queued', import.meta.url));

export interface Daemon {
  process: ChildProcess;
  pid: number;
  /** Emits 'line' with each JSON log line. */
  lines: EventEmitter;
  /** Resolves with the first log line whose msg matches (and the predicate holds). */
  waitFor(msg: string, predicate?: (line: any) => boolean, timeoutMs?: number): Promise<any>;
  stop(): Promise<void>;
}

// A daemon has no IPC channel to notice that the bench ended; one left running (seen once: still
// alive 24 minutes after its bench, its database gone) is killed when the bench process exits.
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const proc of live) proc.kill('SIGKILL');
});

export async function startDaemon(env: Record<string, string>): Promise<Daemon> {
  // --daemon-node (run.ts) runs our daemon under another Node than the bench's own.
  const proc = spawn(process.env.BENCH_DAEMON_NODE ?? process.execPath, [...profilingArgs(), BIN], {
    env: { PATH: process.env.PATH ?? '', BQ_HTTP_PORT: '-1', LOG_LEVEL: 'info', TELEGRAM_BOT_TOKEN: BENCH_TOKEN, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  const lines = new EventEmitter();
  let stderr = '';
  proc.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  createInterface({ input: proc.stdout! }).on('line', (text) => {
    try {
      lines.emit('line', JSON.parse(text));
    } catch {
      /* not a log line */
    }
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const daemon: Daemon = {
    process: proc,
    pid: proc.pid!,
    lines,
    waitFor(msg, predicate = () => true, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => done(new Error(`daemon ${proc.pid}: no '${msg}' within ${timeoutMs} ms; stderr: ${stderr}`)), timeoutMs);
        const onLine = (line: any) => line.msg === msg && predicate(line) && done(null, line);
        const onExit = (code: number | null) => done(new Error(`daemon ${proc.pid} exited (${code}) waiting for '${msg}'; stderr: ${stderr}`));
        function done(error: Error | null, line?: any) {
          clearTimeout(timer);
          lines.off('line', onLine);
          proc.off('exit', onExit);
          if (error) reject(error);
          else resolve(line);
        }
        lines.on('line', onLine);
        proc.once('exit', onExit);
      });
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const killer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(killer);
    },
  };
  await daemon.waitFor('queue started');
  return daemon;
}

/** Resolves, with the pid of the daemon behind each, once n log lines with this msg came from any of them. */
export function collectLines(daemons: Daemon[], msg: string, n: number, timeoutMs: number): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const pids: number[] = [];
    const offs = daemons.map((d) => {
      const onLine = (line: any) => {
        if (line.msg !== msg) return;
        pids.push(d.pid);
        if (pids.length === n) finish(null);
      };
      d.lines.on('line', onLine);
      return () => d.lines.off('line', onLine);
    });
    const timer = setTimeout(() => finish(new Error(`only ${pids.length} of ${n} '${msg}' lines within ${timeoutMs} ms`)), timeoutMs);
    function finish(error: Error | null) {
      clearTimeout(timer);
      for (const off of offs) off();
      if (error) reject(error);
      else resolve(pids);
    }
  });
}

export interface FakeApi extends Child {
  apiRoot: string;
}

/** The Bot API stand-in in its own process (fake-api.ts). */
export async function startFakeApi(options: { rateLimit?: number; latencyMs?: number }): Promise<FakeApi> {
  const child = startChild('./fake-api.js', { BENCH_FAKE_API: JSON.stringify({ token: BENCH_TOKEN, ...options }) });
  const { apiRoot } = await child.next('ready');
  return Object.assign(child, { apiRoot });
}
