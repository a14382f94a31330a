// The parent's side of the bench's child processes: the queue workers (worker.ts) and the Bot API
// stand-in (fake-api.ts), all started with the Node that runs the bench, and peak RSS read from
// /proc/<pid>/status (VmHWM), which writing 5 to /proc/<pid>/clear_refs resets between runs.
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { processTicks, USER_HZ } from './cpu.js';
import { CONFIGS, type ConfigId } from './peers.js';
import type { Context } from './plan.js';
import { openProducer, type Producer } from './producers.js';
import type { WorkerSpec } from './worker.js';

export interface Child {
  process: ChildProcess;
  pid: number;
  send(message: unknown): void;
  /** Resolves with the next message of this type that matches; timeoutMs 0 waits until signal aborts. */
  next<T = any>(type: string, match?: (m: T) => boolean, timeoutMs?: number, signal?: AbortSignal): Promise<T>;
  /** Asks the child to stop and waits for it to exit. */
  stop(): Promise<void>;
}

/**
 * Extra node flags for every child (queues, daemons, stand-in), for profiling:
 * BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" npm run bench -- --quick
 */
export function profilingArgs(): string[] {
  return (process.env.BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
}

export function startChild(script: string, env: Record<string, string>): Child {
  const file = fileURLToPath(new URL(script, import.meta.url));
  const proc = fork(file, [], { env: { ...process.env, ...env }, execArgv: profilingArgs(), stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  proc.on('message', (m: any) => {
    if (m?.type === 'log') console.error(`bench child ${proc.pid}: ${m.message}`);
  });
  return {
    process: proc,
    pid: proc.pid!,
    send: (message) => proc.send(message as never),
    next(type, match = () => true, timeoutMs = 120_000, signal) {
      return new Promise((resolve, reject) => {
        signal?.addEventListener('abort', () => done(new Error(`stopped waiting for '${type}'`)), { once: true });
        const timer = timeoutMs > 0 ? setTimeout(() => done(new Error(`no '${type}' from child ${proc.pid} within ${timeoutMs} ms`)), timeoutMs) : undefined;
        const onMessage = (m: any) => {
          if (m?.type === 'error') done(new Error(`child ${proc.pid} failed: ${m.message}`));
          else if (m?.type === type && match(m)) done(null, m);
        };
        const onExit = (code: number | null) => done(new Error(`child ${proc.pid} exited (${code}) while waiting for '${type}'`));
        function done(error: Error | null, value?: any) {
          clearTimeout(timer);
          proc.off('message', onMessage);
          proc.off('exit', onExit);
          if (error) reject(error);
          else resolve(value);
        }
        proc.on('message', onMessage);
        proc.once('exit', onExit);
      });
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      if (proc.connected) proc.send({ cmd: 'stop' });
      else proc.kill('SIGTERM');
      const killer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

/** A queue worker process for one configuration, resolved once it is listening. */
export async function startWorker(spec: WorkerSpec): Promise<Child> {
  const child = startChild('./worker.js', { BENCH_WORKER: JSON.stringify(spec) });
  await child.next('ready');
  return child;
}

export interface RunTimes {
  /** True when every expected job's handler started before the deadline. */
  complete: boolean;
  seen: number;
  /** Handler start per job seq, on the monotonic clock (ms); holes for jobs never started. */
  times: (number | null)[];
}

/**
 * Tells a worker which run's jobs to watch for, waits for its ack, and returns a function that
 * waits for them all, or after graceMs collects what did start.
 */
export async function armRun(worker: Child, run: number, n: number): Promise<(graceMs: number) => Promise<RunTimes>> {
  worker.send({ cmd: 'expect', run, n });
  await worker.next('expecting', (m) => m.run === run);
  const giveUp = new AbortController();
  const done = worker.next('done', (m) => m.run === run, 0, giveUp.signal);
  done.catch(() => undefined); // a capped run's 'done' never comes
  return async (graceMs) => {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), graceMs)));
    const result = await Promise.race([done, deadline]);
    clearTimeout(timer);
    if (result) return { complete: true, seen: result.seen, times: result.times };
    giveUp.abort();
    worker.send({ cmd: 'report' });
    const report = await worker.next('report', (m) => m.run === run);
    return { complete: false, seen: report.seen, times: report.times };
  };
}

export interface Lane {
  id: ConfigId;
  /** Its database's name, whose backends serve only this configuration (cpu.ts). */
  database: string;
  worker: Child;
  producer: Producer;
}

/** For each configuration: a fresh database, a worker process on it and a producer for it. */
export async function openLanes(ctx: Context, scenario: string, concurrency?: number, only?: ConfigId[]): Promise<Lane[]> {
  const configs = only ? CONFIGS.filter((c) => only.includes(c.id)) : CONFIGS;
  const databases: string[] = [];
  for (const config of configs) databases.push(await ctx.server.createDatabase(`${scenario}_${config.id.replaceAll('-', '_')}`, ctx.templates[config.kind]));
  const urls = databases.map((database) => ctx.server.urlFor(database));
  return Promise.all(configs.map(async (config, i) => ({
    id: config.id,
    database: databases[i]!,
    worker: await startWorker({ id: config.id, kind: config.kind, url: urls[i]!, concurrency }),
    producer: await openProducer(config, urls[i]!),
  })));
}

/** Stops a worker's queue and starts it again at another concurrency, in the same process. */
export async function restartWorker(worker: Child, concurrency: number): Promise<void> {
  const ready = worker.next('ready');
  worker.send({ cmd: 'restart', concurrency });
  await ready;
}

export async function closeLanes(lanes: Lane[]): Promise<void> {
  await Promise.all(lanes.map(async (lane) => {
    await lane.producer.close();
    await lane.worker.stop();
  }));
}

/** Peak resident set size of a live process since start or the last reset, in MB. */
export function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+)\s+kB/.exec(status)?.[1] ?? NaN);
  return kb / 1024;
}

/** CPU time (user + system) a live process has used so far, in seconds (clock ticks of 1/100 s). */
export function cpuSeconds(pid: number): number {
  return processTicks(pid) / USER_HZ;
}

/** Starts a new peak-RSS window for a process; false where the kernel does not allow it. */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** The promise, or an error naming what did not happen within ms. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_resolve, reject) => (timer = setTimeout(() => reject(new Error(`${what} (after ${ms} ms)`)), ms)));
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}
