// Throughput: N no-op jobs queued in one statement, drained at concurrency c. The clock starts
// when the insert has committed (the call returned) and stops when the database shows every job
// completed, so a queue that defers its completion writes gets no credit for them. A queue still
// draining after capMs is stopped there and rated by what it finished (marked capped). The
// worker processes of the wake-latency runs are reused: each queue is restarted at concurrency c.
// PostgreSQL's CPU per job is that of the queue's backends from before the insert to the end of
// the run (cpu.ts), divided by the jobs that ran; the queue process's own CPU over the same window
// likewise. On two cores their sum bounds the rate: neither side can be left out of a comparison.
import { setTimeout as sleep } from 'node:timers/promises';
import { pgCpuWindow } from '../cpu.js';
import { armRun, cpuSeconds, peakRssMb, resetPeakRss, restartWorker, type Lane } from '../child.js';
import { CONFIGS, type ConfigId } from '../peers.js';
import { payloads, type Context } from '../plan.js';
import type { Producer } from '../producers.js';
import { monoMs } from '../stats.js';

export interface ThroughputRun {
  jobsPerSecond: number;
  capped: boolean;
  rssMb: number;
  /** PostgreSQL CPU per job (µs) and backends that exited during the run (their CPU lost), or why not measured. */
  pgCpu: { usPerJob: number; exited: number } | { unavailable: string };
  /** CPU of the queue's own process (the Node side: claims, handlers, completions) per job that ran, µs. */
  workerCpuUsPerJob: number;
}

export type ThroughputResults = Record<number, Record<ConfigId, ThroughputRun[]>>;

export async function measureThroughput(ctx: Context, lanes: Lane[]): Promise<ThroughputResults> {
  const { jobs, runs, concurrencies, capMs } = ctx.plan.throughput;
  const results: ThroughputResults = {};
  for (const concurrency of concurrencies) {
    ctx.progress(`throughput: restarting every queue at concurrency ${concurrency}`);
    await Promise.all(lanes.map((lane) => restartWorker(lane.worker, concurrency)));
    const byConfig = Object.fromEntries(CONFIGS.map((c) => [c.id, [] as ThroughputRun[]])) as Record<ConfigId, ThroughputRun[]>;
    results[concurrency] = byConfig;
    for (let run = 0; run < runs; run++) {
      const id = concurrency * 1000 + run; // unique, so that no late job of another run counts
      const batch = payloads(id, jobs);
      for (const lane of lanes) {
        ctx.progress(`throughput c=${concurrency}: ${lane.id}, run ${run + 1} of ${runs}`);
        resetPeakRss(lane.worker.pid);
        const finished = await armRun(lane.worker, id, jobs);
        const pgCpu = await pgCpuWindow(ctx.server, lane.database);
        const workerCpuBefore = cpuSeconds(lane.worker.pid);
        await lane.producer.bulk(batch);
        const start = monoMs();
        const { complete, seen } = await finished(capMs);
        const end = complete ? await allCompleted(lane.producer) : monoMs();
        const done = complete ? jobs : seen;
        const cpu = await pgCpu();
        const workerCpu = cpuSeconds(lane.worker.pid) - workerCpuBefore;
        byConfig[lane.id].push({
          jobsPerSecond: (done / (end - start)) * 1000,
          capped: !complete,
          rssMb: peakRssMb(lane.worker.pid),
          pgCpu: 'unavailable' in cpu ? cpu : done === 0 ? { unavailable: 'no job ran' } : { usPerJob: cpu.us / done, exited: cpu.exited },
          workerCpuUsPerJob: done === 0 ? NaN : (workerCpu * 1e6) / done,
        });
        await lane.producer.clear();
      }
    }
  }
  return results;
}

/**
 * Every handler has run; completion writes may still be in flight (batched by design in ours and
 * graphile-worker, after the batch in pg-boss). No library emits "persisted", so look, briefly.
 */
async function allCompleted(producer: Producer): Promise<number> {
  for (let tries = 0; (await producer.remaining()) > 0; tries++) {
    if (tries > 5_000) throw new Error('jobs ran but were not recorded as completed within ~10 s');
    await sleep(2);
  }
  return monoMs();
}
