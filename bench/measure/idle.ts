// Idle cost: statements per minute each queue sends while it has nothing to do, counted per
// database by pg_stat_statements (or, without it, by the database's committed transactions).
// The idle processes start first and are measured in consecutive windows while the other
// measurements run; their statements come from their own timers, not from the machine's load.
// Besides the library instance each peer is compared with, our daemon binary is measured as an
// operator runs it (bot token set, admin HTTP off).
import { startWorker, type Child } from '../child.js';
import { startDaemon, startFakeApi, type Daemon, type FakeApi } from '../daemon.js';
import { MAIN_CONFIGS, type ConfigId } from '../peers.js';
import type { Context } from '../plan.js';
import { monoMs } from '../stats.js';

export type IdleId = ConfigId | 'ours-daemon';

export interface IdleResult {
  /** Statements per minute in each window (no entry for throughput-only configurations). */
  perMinute: Partial<Record<IdleId, number[]>>;
  /** What ours sent while idle, per minute, by statement (pg_stat_statements only). */
  breakdown: Record<'ours' | 'ours-daemon', { query: string; perMinute: number }[]>;
}

export interface IdleHandle {
  /** Waits until the planned windows are complete, stops the idle processes, returns the counts. */
  finish(): Promise<IdleResult>;
}

export async function startIdle(ctx: Context): Promise<IdleHandle> {
  const { windowMs, windows } = ctx.plan.idle;
  const databases = new Map<IdleId, string>();
  for (const config of MAIN_CONFIGS) databases.set(config.id, await ctx.server.createDatabase(`idle_${config.id.replaceAll('-', '_')}`, ctx.templates[config.kind]));
  const daemonDb = await ctx.server.createDatabase('idle_daemon', ctx.templates.ours);
  databases.set('ours-daemon', daemonDb);
  const api: FakeApi = await startFakeApi({});
  const [daemon, ...workers]: [Daemon, ...Child[]] = await Promise.all([
    startDaemon({ DATABASE_URL: ctx.server.urlFor(daemonDb), TELEGRAM_API_ROOT: api.apiRoot }),
    ...MAIN_CONFIGS.map((config) => startWorker({ id: config.id, kind: config.kind, url: ctx.server.urlFor(databases.get(config.id)!) })),
  ]);

  const ids = [...databases.keys()];
  const perMinute: Record<string, number[]> = Object.fromEntries(ids.map((id) => [id, [] as number[]]));
  const snapshot = async () => ({ at: monoMs(), counts: await ctx.server.statementCounts() });
  const queriesAtStart = { ours: await ctx.server.queryCounts(databases.get('ours')!), 'ours-daemon': await ctx.server.queryCounts(daemonDb) };
  const started = monoMs();
  let previous = await snapshot();
  let completeWindows!: () => void;
  const allWindows = new Promise<void>((resolve) => (completeWindows = resolve));
  const timer = setInterval(() => {
    void snapshot().then((now) => {
      const minutes = (now.at - previous.at) / 60_000;
      for (const id of ids) {
        const name = databases.get(id)!;
        perMinute[id].push(((now.counts.get(name) ?? 0) - (previous.counts.get(name) ?? 0)) / minutes);
      }
      previous = now;
      if (perMinute.ours.length >= windows) completeWindows();
    });
  }, windowMs);

  return {
    async finish() {
      if (perMinute.ours.length < windows) ctx.progress(`idle: waiting for the last of ${windows} idle windows of ${windowMs / 1000} s`);
      await allWindows;
      clearInterval(timer);
      const minutes = (monoMs() - started) / 60_000;
      const breakdown = { ours: [] as { query: string; perMinute: number }[], 'ours-daemon': [] as { query: string; perMinute: number }[] };
      for (const id of ['ours', 'ours-daemon'] as const) {
        const end = await ctx.server.queryCounts(databases.get(id)!);
        for (const [query, calls] of end) {
          const delta = calls - (queriesAtStart[id].get(query) ?? 0);
          if (delta > 0) breakdown[id].push({ query, perMinute: delta / minutes });
        }
        breakdown[id].sort((a, b) => b.perMinute - a.perMinute);
      }
      await daemon.stop();
      await api.stop();
      for (const worker of workers) await worker.stop();
      return { perMinute, breakdown };
    },
  };
}
