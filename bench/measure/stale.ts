// Stale statistics (issue 13): a 20,000-job burst into each queue's jobs table in two states.
//  - current: emptied with TRUNCATE, never analyzed since (pg_class.reltuples = -1), so the planner
//    measures the table's real size when it plans each claim: what the throughput rows measure.
//  - analyzed empty: a first burst drained, then ANALYZE, as autoanalyze does after a drain
//    (pg_class: the table's pages, no pending rows), then the measured burst. The planner then
//    believes no job is due until the next autoanalyze, which a claim statement already running
//    cannot benefit from. (ANALYZE right after TRUNCATE is harmless: with no pages on record the
//    planner measures the table's size when it plans.)
// Each queue's fastest profile at one concurrency; a run still going after capMs is rated by what
// it finished. The rate is from the insert's return to the database showing every job completed.
import { setTimeout as sleep } from 'node:timers/promises';
import { armRun, closeLanes, openLanes } from '../child.js';
import type { ConfigId } from '../peers.js';
import { payloads, type Context } from '../plan.js';
import type { Producer } from '../producers.js';
import { monoMs } from '../stats.js';

export const STALE_CONFIGS: ConfigId[] = ['ours', 'gw-fast', 'boss-listen'];

export interface StaleRun {
  jobsPerSecond: number;
  capped: boolean;
}

export type StaleResults = Record<'current' | 'analyzedEmpty', Partial<Record<ConfigId, StaleRun[]>>>;

export async function measureStale(ctx: Context): Promise<StaleResults> {
  const { jobs, runs, concurrency, capMs } = ctx.plan.stale;
  const lanes = await openLanes(ctx, 'stale', concurrency, STALE_CONFIGS);
  const results: StaleResults = { current: {}, analyzedEmpty: {} };
  try {
    for (let run = 0; run < runs; run++) {
      for (const state of ['current', 'analyzedEmpty'] as const) {
        for (const lane of lanes) {
          ctx.progress(`stale statistics: ${lane.id}, ${state === 'current' ? 'statistics current' : 'analyzed while empty'}, run ${run + 1} of ${runs}`);
          await lane.producer.clear();
          if (state === 'analyzedEmpty') {
            await lane.producer.bulk(payloads(800_000 + run, jobs));
            await drained(lane.producer, capMs * 4);
            await lane.producer.analyze();
          }
          const id = 900_000 + run * 2 + (state === 'current' ? 0 : 1);
          const finished = await armRun(lane.worker, id, jobs);
          await lane.producer.bulk(payloads(id, jobs));
          const start = monoMs();
          const { complete, seen } = await finished(capMs);
          const end = complete ? await allCompleted(lane.producer, capMs) : monoMs();
          (results[state][lane.id] ??= []).push({ jobsPerSecond: ((complete ? jobs : seen) / (end - start)) * 1000, capped: !complete });
        }
      }
    }
  } finally {
    for (const lane of lanes) await lane.producer.clear().catch(() => undefined);
    await closeLanes(lanes);
  }
  return results;
}

async function allCompleted(producer: Producer, capMs: number): Promise<number> {
  await drained(producer, capMs);
  return monoMs();
}

async function drained(producer: Producer, ms: number): Promise<void> {
  const deadline = monoMs() + ms;
  while ((await producer.remaining()) > 0) {
    if (monoMs() > deadline) throw new Error(`jobs not all completed within ${ms} ms`);
    await sleep(5);
  }
}
