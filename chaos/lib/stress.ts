// `--stress`: the run on a machine that is not quiet. One busy process per core, at the daemons'
// own priority, for the whole run; and short stalls of the daemon processes themselves (SIGSTOP,
// then SIGCONT 100–500 ms later), which is what a GC pause, a starved CPU or a noisy neighbour
// looks like from inside: every timer fires late, sockets fill up, leases age.
import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { frozenChildren, liveChildren } from './daemons.js';
import { between, pick, seededRandom } from './util.js';

export interface StressOptions {
  seed: number;
  /** Stall lengths, ms. */
  stallMs?: [number, number];
  /** Quiet time between two stalls, ms. */
  gapMs?: [number, number];
}

export interface StressStats {
  busyProcesses: number;
  stalls: number;
  stalledMs: number;
}

const BUSY_LOOP = 'for (;;) {}';

export class Stress {
  private readonly busy: ChildProcess[] = [];
  private readonly stopped = new Set<ChildProcess>();
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  readonly stats: StressStats = { busyProcesses: 0, stalls: 0, stalledMs: 0 };

  private constructor(private readonly options: StressOptions) {}

  static start(options: StressOptions): Stress {
    const stress = new Stress(options);
    stress.begin();
    return stress;
  }

  private begin(): void {
    this.running = true;
    // Spawned children inherit this process's nice value, which is the daemons' too.
    for (let i = 0; i < os.cpus().length; i++) {
      const child = spawn(process.execPath, ['-e', BUSY_LOOP], { stdio: 'ignore' });
      child.on('error', () => undefined);
      this.busy.push(child);
    }
    this.stats.busyProcesses = this.busy.length;
    // Its own sequence, so stalls do not shift the scenarios' seeded faults.
    const random = seededRandom(this.options.seed ^ 0x5157);
    const [minStall, maxStall] = this.options.stallMs ?? [100, 500];
    const [minGap, maxGap] = this.options.gapMs ?? [500, 3_000];
    const next = () => {
      if (!this.running) return;
      this.timer = setTimeout(() => {
        const daemons = [...liveChildren].filter((c) => c.exitCode === null && c.signalCode === null && !this.stopped.has(c) && !frozenChildren.has(c));
        if (daemons.length) this.stall(pick(random, daemons), Math.round(between(random, minStall, maxStall)));
        next();
      }, between(random, minGap, maxGap));
      this.timer.unref();
    };
    next();
  }

  private stall(child: ChildProcess, ms: number): void {
    if (!child.kill('SIGSTOP')) return;
    this.stopped.add(child);
    this.stats.stalls++;
    this.stats.stalledMs += ms;
    setTimeout(() => this.resume(child), ms).unref();
  }

  private resume(child: ChildProcess): void {
    if (!this.stopped.delete(child)) return;
    // A scenario froze it meanwhile to read its state before a kill: it must stay stopped.
    if (frozenChildren.has(child)) return;
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGCONT');
  }

  /** Ends the pressure: no stalled daemon is left stopped, no busy process left running. */
  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
    for (const child of [...this.stopped]) this.resume(child);
    for (const child of this.busy) child.kill('SIGKILL');
  }

  describe(): string {
    return `${this.stats.busyProcesses} busy processes (one per core) for the whole run; ${this.stats.stalls} daemon stalls (SIGSTOP 100–500 ms), ${(this.stats.stalledMs / 1000).toFixed(1)} s in all`;
  }
}
