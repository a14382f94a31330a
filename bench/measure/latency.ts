// Wake latency: an idle worker, single-row inserts 10–20 ms apart (start to start), and the time
// from each insert call to its no-op handler starting, on the machine-wide monotonic clock. Runs
// are interleaved across queues so that a noisy neighbour hits them all alike. Each queue runs
// with the settings it has without a concurrency under test (peers.ts).
import { setTimeout as sleep } from 'node:timers/promises';
import { armRun, peakRssMb, resetPeakRss, type Lane } from '../child.js';
import { MAIN_CONFIGS, type ConfigId } from '../peers.js';
import { gaps, type Context } from '../plan.js';
import { monoMs, percentile } from '../stats.js';

export interface LatencyRun {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  /** Handlers that started before the grace period after the last insert ran out. */
  started: number;
  inserts: number;
  rssMb: number;
}

export async function measureLatency(ctx: Context, lanes: Lane[]): Promise<Record<ConfigId, LatencyRun[]>> {
  const { inserts, runs, gapMs, graceMs } = ctx.plan.latency;
  const results = Object.fromEntries(MAIN_CONFIGS.map((c) => [c.id, [] as LatencyRun[]])) as Record<ConfigId, LatencyRun[]>;
  for (let run = 0; run < runs; run++) {
    const spacing = gaps(inserts, gapMs, 1000 + run);
    for (const lane of lanes.filter((l) => l.id in results)) {
      ctx.progress(`wake latency: ${lane.id}, run ${run + 1} of ${runs}`);
      resetPeakRss(lane.worker.pid);
      const finished = await armRun(lane.worker, run, inserts);
      const calledAt: number[] = [];
      let next = monoMs();
      for (let seq = 0; seq < inserts; seq++) {
        const wait = next - monoMs();
        if (wait > 0) await sleep(wait); // the workload's own spacing, not a wait for an event
        calledAt[seq] = monoMs();
        await lane.producer.single({ run, seq });
        next = calledAt[seq]! + spacing[seq]!;
      }
      const { times } = await finished(graceMs);
      const latencies = calledAt.map((at, seq) => (times[seq] != null ? times[seq]! - at : Infinity));
      results[lane.id].push({
        p50: percentile(latencies, 50),
        p90: percentile(latencies, 90),
        p99: percentile(latencies, 99),
        max: Math.max(...latencies),
        started: latencies.filter(Number.isFinite).length,
        inserts,
        rssMb: peakRssMb(lane.worker.pid),
      });
      // A queue that fell behind (pg-boss at its 2 s poll) must not start the next run behind.
      await lane.producer.clear();
    }
  }
  return results;
}
