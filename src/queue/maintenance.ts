// One loop for the daemon's housekeeping (finished jobs, broadcast history): each task deletes
// what its retention no longer keeps, in turn, once at start and then an interval after the last
// pass ended, so a slow pass (a first run over a year of history) can never overlap the next.
import { errorMessage, type Logger } from '../log.js';
import { sleep } from '../time.js';

/** A line for the log about what a pass did. */
export interface MaintenanceReport {
  level: 'info' | 'debug';
  fields: Record<string, unknown>;
  message: string;
}

export interface MaintenanceTask {
  /** Names the task in the warning when a pass fails. */
  name: string;
  /** How long the task keeps what it deletes; 0 keeps it forever, so the task never runs. */
  days: number;
  /** One pass; resolves to what it did, nothing when there was nothing to delete. Checks `signal` between batches. */
  run(signal: AbortSignal): Promise<MaintenanceReport[]>;
}

export class Maintenance {
  private readonly tasks: MaintenanceTask[];
  private readonly stopping = new AbortController();
  private loop: Promise<void> | null = null;
  private running: Promise<MaintenanceReport[]> | null = null;

  constructor(
    tasks: MaintenanceTask[],
    private readonly log: Logger,
    private readonly intervalMs = 3_600_000,
  ) {
    this.tasks = tasks.filter((task) => task.days > 0);
  }

  start(): void {
    if (this.tasks.length === 0 || this.loop) return;
    this.loop = this.runForever();
  }

  /** Stops between batches: shutdown waits for one statement at most, not for a whole pass. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.loop;
    await this.running;
  }

  /** Every task once, in turn; a failing task does not keep the next from running. */
  runOnce(): Promise<MaintenanceReport[]> {
    this.running ??= this.runTasks().finally(() => (this.running = null));
    return this.running;
  }

  private async runForever(): Promise<void> {
    const signal = this.stopping.signal;
    while (!signal.aborted) {
      await this.runOnce();
      await sleep(this.intervalMs, signal, { unref: true });
    }
  }

  private async runTasks(): Promise<MaintenanceReport[]> {
    const reports: MaintenanceReport[] = [];
    for (const task of this.tasks) {
      if (this.stopping.signal.aborted) break;
      try {
        for (const report of await task.run(this.stopping.signal)) {
          this.log[report.level](report.fields, report.message);
          reports.push(report);
        }
      } catch (error) {
        // A lock wait refused (55P03) or a pool shut down: the next pass goes on from where this stopped.
        this.log.warn({ err: errorMessage(error) }, `${task.name} failed`);
      }
    }
    return reports;
  }
}
