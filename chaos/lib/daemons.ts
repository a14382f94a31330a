// Daemons as the operator runs them: bin/broadcast-queued in a child process, configured by its
// environment. A DaemonSlot is one named daemon across restarts; it follows the JSON log lines on
// stdout, counts what the report needs (unexpected exits, unhandled rejections, fatal lines,
// listener reconnects) and keeps every line in a log file for reproductions.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../src/db/embedded.js';

const DAEMON_BIN = fileURLToPath(new URL('../../../bin/broadcast-queued', import.meta.url));
const BQCTL_BIN = fileURLToPath(new URL('../../../bin/bqctl', import.meta.url));
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export interface LogLine {
  level?: number;
  msg?: string;
  [key: string]: unknown;
}

export interface Incident {
  daemon: string;
  kind: 'crash' | 'unhandled' | 'fatal' | 'unclean-stop' | 'stderr';
  detail: string;
}

export interface DaemonSettings {
  databaseUrl: string;
  apiRoot: string;
  token: string;
  rateLimit: number;
  concurrency?: number;
  /** Extra variables (BQ_API_TOKEN, BQ_DELIVERY, …). */
  env?: Record<string, string>;
  /** Start an admin HTTP server on a free port (otherwise BQ_HTTP_PORT=-1). */
  http?: boolean;
}

/**
 * How the chaos daemons are configured: short windows, so a dead daemon's jobs are back within
 * about 1–2 s. Both liveness models are covered: heartbeats (BQ_HEARTBEAT_SECONDS, rescue after
 * BQ_RESCUE_AFTER_SECONDS of silence) and the liveness lock (a dead daemon is noticed at the next
 * BQ_SWEEP_SECONDS sweep; BQ_RESCUE_AFTER_SECONDS is then the hung window, at least 3 sweeps).
 */
export const CHAOS_DAEMON_ENV = {
  BQ_HEARTBEAT_SECONDS: '0.25',
  BQ_SWEEP_SECONDS: '0.5',
  // The hung window: a daemon that keeps its lock but has not swept for this long is declared
  // dead. No scenario hangs a daemon that way (a kill -9 drops the lock and is noticed at the next
  // sweep), but under --stress a live daemon starved on a loaded machine missed 2 s of sweeps: 2 to
  // 4 live daemons were declared dead per crashes run, and each takeover counted the live run's
  // in-flight rows as unknown (seeds 3101, 3102 at load 25 on 2 cores). Production's is 120 s.
  BQ_RESCUE_AFTER_SECONDS: '10',
  // A retriable job (a 5xx on a send job, a database error in a broadcast) is retried after 2 s,
  // not the production 60 s, so that a chaos run takes minutes, not hours.
  BQ_RETRY_BASE_SECONDS: '2',
  BQ_RETRY_MAX_SECONDS: '10',
  BQ_SHUTDOWN_TIMEOUT_SECONDS: '5',
  LOG_LEVEL: process.env.CHAOS_LOG_LEVEL ?? 'info',
};

/** Every daemon process this run has running, so an interrupted run can kill them all. */
export const liveChildren = new Set<ChildProcess>();
/** Daemons a scenario froze (SIGSTOP) to read their state before a kill: --stress leaves them alone. */
export const frozenChildren = new Set<ChildProcess>();

export class DaemonSlot {
  private child: ChildProcess | null = null;
  private expectingExit = false;
  private exitedPromise: Promise<void> = Promise.resolve();
  private logFile: WriteStream;
  private readonly recent: string[] = [];
  readonly incidents: Incident[] = [];
  starts = 0;
  kills = 0;
  listenerConnected = 0;
  errorLines = 0;
  warnLines = 0;
  httpPort = -1;
  daemonId: string | null = null;
  /** Every msg seen, with how often (for the notes: 'job failed', 'claim failed' …). */
  readonly messages = new Map<string, number>();
  private lineWaiters: { match: (line: LogLine) => boolean; resolve: (line: LogLine) => void }[] = [];

  constructor(
    readonly name: string,
    private readonly settings: DaemonSettings,
    logDir: string,
  ) {
    this.logFile = createWriteStream(path.join(logDir, `${name}.log`), { flags: 'a' });
  }

  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  get crashes(): number {
    return this.incidents.filter((i) => i.kind === 'crash').length;
  }

  get unhandled(): number {
    return this.incidents.filter((i) => i.kind === 'unhandled' || i.kind === 'fatal').length;
  }

  /** Starts the daemon and resolves once it logged 'queue started'. */
  async start(timeoutMs = 60_000): Promise<void> {
    if (this.running) throw new Error(`${this.name} is already running`);
    if (this.settings.http && this.httpPort < 0) this.httpPort = await freePort();
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? '/root',
      ...CHAOS_DAEMON_ENV,
      DATABASE_URL: this.settings.databaseUrl,
      TELEGRAM_BOT_TOKEN: this.settings.token,
      TELEGRAM_API_ROOT: this.settings.apiRoot,
      BQ_RATE_LIMIT: String(this.settings.rateLimit),
      BQ_CONCURRENCY: String(this.settings.concurrency ?? 4),
      BQ_HTTP_PORT: String(this.httpPort),
      BQ_DATA_DIR: path.join(REPO_ROOT, '.bq-data', 'chaos-unused'),
      ...this.settings.env,
    };
    this.starts++;
    this.expectingExit = false;
    this.daemonId = null;
    const child = spawn(process.execPath, [DAEMON_BIN], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    liveChildren.add(child);
    this.logFile.write(`--- start #${this.starts} pid ${child.pid} at ${new Date().toISOString()}\n`);
    createInterface({ input: child.stdout! }).on('line', (text) => this.onLine(text));
    createInterface({ input: child.stderr! }).on('line', (text) => {
      this.logFile.write(`[stderr] ${text}\n`);
      this.remember(`[stderr] ${text}`);
      // Node prints warnings (MaxListenersExceeded …) and fatal stacks here; the daemon logs JSON to stdout.
      this.incidents.push({ daemon: this.name, kind: 'stderr', detail: text.slice(0, 300) });
    });
    this.exitedPromise = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        liveChildren.delete(child);
        frozenChildren.delete(child);
        this.logFile.write(`--- exit code ${code} signal ${signal} at ${new Date().toISOString()}\n`);
        if (!this.expectingExit) {
          this.incidents.push({ daemon: this.name, kind: 'crash', detail: `pid ${child.pid} exited unexpectedly (code ${code}, signal ${signal}); last lines:\n    ${this.recent.slice(-8).join('\n    ')}` });
        }
        for (const w of this.lineWaiters.splice(0)) w.resolve({ msg: '(exited)' });
        resolve();
      });
    });
    const ready = await this.waitForLine((l) => l.msg === 'queue started', timeoutMs);
    if (ready.msg !== 'queue started') throw new Error(`${this.name} exited before it started; last lines:\n  ${this.recent.slice(-10).join('\n  ')}`);
    this.daemonId = typeof ready.daemonId === 'string' ? ready.daemonId : null;
  }

  /** Resolves with the next log line that matches (or a '(exited)' line if the daemon exits). */
  waitForLine(match: (line: LogLine) => boolean, timeoutMs: number): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.lineWaiters = this.lineWaiters.filter((w) => w !== waiter);
        reject(new Error(`${this.name}: no matching log line within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = { match, resolve: (line: LogLine) => { clearTimeout(timer); resolve(line); } };
      this.lineWaiters.push(waiter);
    });
  }

  private onLine(text: string): void {
    this.logFile.write(`${text}\n`);
    this.remember(text);
    let line: LogLine;
    try {
      line = JSON.parse(text) as LogLine;
    } catch {
      this.incidents.push({ daemon: this.name, kind: 'stderr', detail: `non-JSON stdout: ${text.slice(0, 300)}` });
      return;
    }
    const msg = String(line.msg ?? '');
    this.messages.set(msg, (this.messages.get(msg) ?? 0) + 1);
    if (msg === 'listener connected') this.listenerConnected++;
    const level = Number(line.level ?? 0);
    if (level >= 50) this.errorLines++;
    else if (level >= 40) this.warnLines++;
    if (msg === 'unhandled promise rejection') this.incidents.push({ daemon: this.name, kind: 'unhandled', detail: text.slice(0, 500) });
    else if (level >= 60) this.incidents.push({ daemon: this.name, kind: 'fatal', detail: text.slice(0, 500) });
    for (const w of [...this.lineWaiters]) {
      if (w.match(line)) {
        this.lineWaiters = this.lineWaiters.filter((x) => x !== w);
        w.resolve(line);
      }
    }
  }

  private remember(text: string): void {
    this.recent.push(text.slice(0, 400));
    if (this.recent.length > 60) this.recent.shift();
  }

  /**
   * SIGSTOP, held until kill9: the daemon can change nothing more, so what it had in flight can be
   * read before a rescue (by the other daemon, as soon as the connection drops) changes it.
   */
  freeze(): void {
    if (!this.running) return;
    frozenChildren.add(this.child!);
    this.child!.kill('SIGSTOP');
  }

  /** kill -9; resolves once the process is gone. */
  async kill9(): Promise<void> {
    if (!this.running) return;
    this.expectingExit = true;
    this.kills++;
    this.child!.kill('SIGKILL');
    await this.exitedPromise;
  }

  /** SIGTERM and wait; a non-zero exit or a hang past the shutdown window is an incident. */
  async stop(timeoutMs = 30_000): Promise<void> {
    if (!this.running) return;
    this.expectingExit = true;
    const child = this.child!;
    child.kill('SIGTERM');
    const timer = setTimeout(() => {
      this.incidents.push({ daemon: this.name, kind: 'unclean-stop', detail: `pid ${child.pid} still running ${timeoutMs} ms after SIGTERM; killed` });
      child.kill('SIGKILL');
    }, timeoutMs);
    await this.exitedPromise;
    clearTimeout(timer);
    if (child.exitCode !== null && child.exitCode !== 0) {
      this.incidents.push({ daemon: this.name, kind: 'unclean-stop', detail: `pid ${child.pid} exited ${child.exitCode} after SIGTERM; last lines:\n    ${this.recent.slice(-6).join('\n    ')}` });
    }
  }

  /** Resident memory of the running process in MB, from /proc/<pid>/status VmRSS. */
  rssMb(): number | null {
    const pid = this.pid;
    if (!pid || !this.running) return null;
    try {
      const kb = Number(/VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
      return Number.isFinite(kb) ? Math.round(kb / 1024) : null;
    } catch {
      return null;
    }
  }

  lastLines(n = 10): string[] {
    return this.recent.slice(-n);
  }

  close(): void {
    this.logFile.end();
  }
}

/** A group of daemons in one scenario, with the totals the report needs. */
export class Fleet {
  readonly slots: DaemonSlot[] = [];

  constructor(private readonly settings: DaemonSettings, private readonly logDir: string, private readonly prefix: string) {}

  add(name?: string, overrides: Partial<DaemonSettings> = {}): DaemonSlot {
    const slot = new DaemonSlot(`${this.prefix}-${name ?? `d${this.slots.length + 1}`}`, { ...this.settings, ...overrides, env: { ...this.settings.env, ...overrides.env } }, this.logDir);
    this.slots.push(slot);
    return slot;
  }

  async startAll(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.start()));
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.stop()));
    for (const s of this.slots) s.close();
  }

  /** Kills everything at once (a scenario that failed half-way). */
  async killAll(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.kill9()));
    for (const s of this.slots) s.close();
  }

  rss(): (number | null)[] {
    return this.slots.map((s) => s.rssMb());
  }

  get crashes(): number {
    return this.slots.reduce((n, s) => n + s.crashes, 0);
  }

  get unhandled(): number {
    return this.slots.reduce((n, s) => n + s.unhandled, 0);
  }

  incidents(): Incident[] {
    return this.slots.flatMap((s) => s.incidents);
  }

  /** The slot whose current incarnation has this daemon id. */
  byDaemonId(daemonId: string): DaemonSlot | undefined {
    return this.slots.find((s) => s.daemonId === daemonId);
  }

  messageCount(msg: string): number {
    return this.slots.reduce((n, s) => n + (s.messages.get(msg) ?? 0), 0);
  }
}

export interface CliRun {
  args: string[];
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
  timedOut: boolean;
}

/** Runs bin/bqctl with the given arguments and environment, with a time limit. */
export function runBqctl(args: string[], env: Record<string, string>, timeoutMs = 20_000, stdin?: string): Promise<CliRun> {
  const began = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BQCTL_BIN, ...args], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', BQ_DATA_DIR: path.join(REPO_ROOT, '.bq-data', 'chaos-unused'), ...env },
      stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    if (stdin !== undefined) child.stdin!.end(stdin);
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ args, code, signal, stdout, stderr, ms: Date.now() - began, timedOut });
    });
  });
}
