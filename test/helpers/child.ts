import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

export interface ChildDaemon {
  process: ChildProcess;
  /** Emits 'line' with each parsed JSON line of stdout, 'stderr' with all of stderr so far, and 'exit'. */
  events: EventEmitter;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts a script from dist/ with the given environment and follows its JSON-lines stdout. */
export function startChild(script: 'fixtures/worker.js' | 'daemon', env: Record<string, string>, args: string[] = []): ChildDaemon {
  const file = script === 'daemon'
    ? fileURLToPath(new URL('../../../bin/broadcast-queued', import.meta.url))
    : fileURLToPath(new URL(`../${script}`, import.meta.url));
  const child = spawn(process.execPath, [file, ...args], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const events = new EventEmitter();
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    events.emit('stderr', stderr);
  });
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      events.emit('line', JSON.parse(line));
    } catch {
      events.emit('text', line);
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      events.emit('exit', code);
      resolve({ code, signal });
    }),
  );
  return { process: child, events, stderr: () => stderr, exited };
}
