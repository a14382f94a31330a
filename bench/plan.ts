// How much each measurement does in a full run and in --quick (about two minutes in all).
import type { Server } from './db.js';
import type { Kind } from './peers.js';
import { seededRandom } from '../src/testing/random.js';

export interface RateCase {
  limit: number;
  daemons: number;
  messages: number;
}

export interface Plan {
  quick: boolean;
  latency: { inserts: number; runs: number; gapMs: [number, number]; graceMs: number };
  throughput: { jobs: number; runs: number; concurrencies: number[]; capMs: number };
  enqueue: { jobs: number; runs: number };
  idle: { windowMs: number; windows: number };
  broadcast: { fanouts: number[]; runs: number; rates: RateCase[]; apiLatencyMs: number };
  stale: { jobs: number; runs: number; concurrency: number; capMs: number };
  /** Ours only: independent jobs per round, claim size, rounds of the four modes (measure/dependencies.ts). */
  dependencies: { jobs: number; batch: number; rounds: number };
  /** What --quick leaves out, said in the output. */
  skipped: string[];
}

export function makePlan(quick: boolean): Plan {
  if (quick) {
    return {
      quick,
      latency: { inserts: 100, runs: 3, gapMs: [10, 20], graceMs: 1_500 },
      throughput: { jobs: 10_000, runs: 2, concurrencies: [1, 10, 50], capMs: 1_500 },
      enqueue: { jobs: 1_000, runs: 2 },
      idle: { windowMs: 30_000, windows: 3 },
      stale: { jobs: 20_000, runs: 1, concurrency: 10, capMs: 30_000 },
      dependencies: { jobs: 20_000, batch: 250, rounds: 2 },
      broadcast: {
        fanouts: [100_000],
        runs: 2,
        rates: [
          { limit: 30, daemons: 1, messages: 90 },
          { limit: 30, daemons: 3, messages: 90 },
          { limit: 1000, daemons: 1, messages: 3_000 },
        ],
        apiLatencyMs: 50,
      },
      skipped: [
        'the 1M-subscriber fan-out',
        'the 1000/s run with three daemons',
        'one stale-statistics run per queue and state instead of 2, capped at 30 s instead of 60',
        'smaller N: 2 dependency-cost rounds instead of 5; 100 wake-ups per run instead of 1,000; 10,000 jobs instead of 20,000 for throughput and 1,000 for enqueue; 3-second rate runs instead of 15; 30 s idle windows instead of 60 s; 2 runs instead of 3 for throughput and broadcast',
      ],
    };
  }
  return {
    quick,
    latency: { inserts: 1_000, runs: 3, gapMs: [10, 20], graceMs: 5_000 },
    throughput: { jobs: 20_000, runs: 3, concurrencies: [1, 10, 50], capMs: 10_000 },
    enqueue: { jobs: 20_000, runs: 2 },
    idle: { windowMs: 60_000, windows: 3 },
    stale: { jobs: 20_000, runs: 2, concurrency: 10, capMs: 60_000 },
    dependencies: { jobs: 20_000, batch: 250, rounds: 5 },
    broadcast: {
      fanouts: [100_000, 1_000_000],
      runs: 3,
      rates: [
        { limit: 30, daemons: 1, messages: 450 },
        { limit: 30, daemons: 3, messages: 450 },
        { limit: 1000, daemons: 1, messages: 15_000 },
        { limit: 1000, daemons: 3, messages: 15_000 },
      ],
      apiLatencyMs: 50,
    },
    skipped: [],
  };
}

/** What every measurement gets. */
export interface Context {
  server: Server;
  plan: Plan;
  templates: Record<Kind, string>;
  progress(message: string): void;
}

/** Jobs of run `run`, numbered 0…n−1 so a worker can file each handler start under its seq. */
export function payloads(run: number, n: number): { run: number; seq: number }[] {
  return Array.from({ length: n }, (_v, seq) => ({ run, seq }));
}

/** The same pseudo-random gaps for every queue and run (seededRandom). */
export function gaps(n: number, [lo, hi]: [number, number], seed: number): number[] {
  const next = seededRandom(seed);
  return Array.from({ length: n }, () => lo + (hi - lo) * next());
}
