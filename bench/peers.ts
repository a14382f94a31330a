// The five queue configurations the bench runs side by side, and the exact settings of each. The
// worker processes build their queues from these objects, and the report prints them, so what is
// described is what ran.

export type Kind = 'ours' | 'graphile' | 'pgboss';
export type ConfigId = 'ours' | 'ours-prefetch' | 'gw-fast' | 'gw-default' | 'boss-listen' | 'boss-default';

export interface QueueConfig {
  id: ConfigId;
  kind: Kind;
  label: string;
  /** Measured for throughput only (prefetch changes nothing for a lone job or an idle queue). */
  throughputOnly?: boolean;
}

export const CONFIGS: QueueConfig[] = [
  { id: 'ours', kind: 'ours', label: 'broadcast-queued' },
  { id: 'ours-prefetch', kind: 'ours', label: 'broadcast-queued prefetch 500', throughputOnly: true },
  { id: 'gw-fast', kind: 'graphile', label: 'graphile-worker fastest' },
  { id: 'gw-default', kind: 'graphile', label: 'graphile-worker defaults' },
  { id: 'boss-listen', kind: 'pgboss', label: 'pg-boss LISTEN/NOTIFY' },
  { id: 'boss-default', kind: 'pgboss', label: 'pg-boss defaults' },
];

export const PEERS = CONFIGS.filter((c) => c.kind !== 'ours');
/** Everything but the throughput-only configurations. */
export const MAIN_CONFIGS = CONFIGS.filter((c) => !c.throughputOnly);

/**
 * Jobs per fetch in pg-boss's fast profile: the fastest of 20, 100 and 500 on this machine at every
 * concurrency (20k jobs; 500 is also graphile-worker's documented localQueue size).
 */
export const PGBOSS_BATCH = 500;
export const PGBOSS_QUEUE = { notify: 'bench_notify', plain: 'bench_plain' } as const;

/**
 * Settings by configuration. `concurrency` is the throughput run's concurrency; without it the
 * configuration runs as it would for the wake-latency and idle runs.
 */
export function settingsOf(id: ConfigId, concurrency?: number): Record<string, unknown> {
  switch (id) {
    case 'ours':
      // Library defaults except the handler; the default concurrency is 2.
      return { concurrency: concurrency ?? 2 };
    case 'ours-prefetch':
      // The README's setting "for many short jobs of your own": claim 500 ahead of free slots, the
      // same local buffer as graphile-worker's fastest profile (localQueue size 500).
      return { concurrency: concurrency ?? 2, prefetch: 500 };
    case 'gw-fast':
      // worker.graphile.org/docs/performance: "concurrentJobs: 24, maxPoolSize: 25, localQueue:
      // { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0". With another concurrency,
      // maxPoolSize follows its advice: "10 or concurrentJobs + 2, whichever is larger".
      return {
        concurrentJobs: concurrency ?? 24,
        maxPoolSize: concurrency === undefined ? 25 : Math.max(10, concurrency + 2),
        localQueue: { size: 500 },
        completeJobBatchDelay: 0,
        failJobBatchDelay: 0,
      };
    case 'gw-default':
      // Everything at its default (pollInterval 2000, maxPoolSize 10, no local queue, no batching).
      return { concurrentJobs: concurrency ?? 1 };
    case 'boss-listen':
      // pg-boss 12's LISTEN/NOTIFY mode: the instance option useListenNotify plus the queue option
      // notify. Workers fetch batches and keep fetching while batches come back full
      // (burstWhenBatchFull); the pool gets room for every worker.
      return {
        constructor: { useListenNotify: true, max: Math.max(10, (concurrency ?? 1) + 2) },
        queue: { name: PGBOSS_QUEUE.notify, notify: true },
        work: { localConcurrency: concurrency ?? 1, batchSize: PGBOSS_BATCH, burstWhenBatchFull: true },
      };
    case 'boss-default':
      // Everything at its default: polling every 2 s, batchSize 1, pool of 10, no LISTEN.
      return {
        constructor: {},
        queue: { name: PGBOSS_QUEUE.plain },
        work: { localConcurrency: concurrency ?? 1 },
      };
  }
}
