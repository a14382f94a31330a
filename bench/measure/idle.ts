// Idle cost: statements per minute each queue sends while it has nothing to do, counted on the
// wire by a proxy in front of each queue's database (src/testing/statement-counter.ts): every
// simple query and every extended-protocol Execute is one statement. pg_stat_statements is not
// needed, and the server's transaction counter is no stand-in: a LISTEN connection runs a
// transaction of its own whenever other databases' notifications pile up (PostgreSQL signals a
// listener that falls 4 queue pages behind), so an idle queue's database counted the other
// queues' wake-ups. The idle processes start first and are measured in consecutive windows while
// the other measurements run; their statements come from their own timers, not from the load.
// Besides the library instance each peer is compared with, our daemon binary is measured as an
// operator runs it (bot token set, admin HTTP off).
import { startWorker, type Child } from '../child.js';
import { startDaemon, startFakeApi, type Daemon, type FakeApi } from '../daemon.js';
import { MAIN_CONFIGS, type ConfigId } from '../peers.js';
import type { Context } from '../plan.js';
import { monoMs } from '../stats.js';
import { StatementCounter } from '../../src/testing/statement-counter.js';

const SETTLE_MS = 5_000;

export type IdleId = ConfigId | 'ours-daemon';

export interface IdleResult {
  /** Statements per minute in each window (no entry for throughput-only configurations). */
  perMinute: Partial<Record<IdleId, number[]>>;
  /** What ours sent while idle, per minute, by statement. */
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
  const counters = new Map<IdleId, StatementCounter>();
  for (const [id, name] of databases) counters.set(id, await StatementCounter.start(ctx.server.urlFor(name)));
  const urlFor = (id: IdleId) => counters.get(id)!.connectionString(ctx.server.urlFor(databases.get(id)!));
  const api: FakeApi = await startFakeApi({});
  const [daemon, ...workers]: [Daemon, ...Child[]] = await Promise.all([
    startDaemon({ DATABASE_URL: urlFor('ours-daemon'), TELEGRAM_API_ROOT: api.apiRoot }),
    ...MAIN_CONFIGS.map((config) => startWorker({ id: config.id, kind: config.kind, url: urlFor(config.id) })),
  ]);

  const ids = [...databases.keys()];
  const perMinute: Record<string, number[]> = Object.fromEntries(ids.map((id) => [id, [] as number[]]));
  // Start-up is not idle: the first claim and schedule read that follow the listener's connect
  // come just after 'ready', so counting starts a few seconds later.
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
  for (const counter of counters.values()) counter.reset();
  const snapshot = () => ({ at: monoMs(), counts: new Map(ids.map((id) => [id, counters.get(id)!.statements.length])) });
  const started = monoMs();
  let previous = snapshot();
  let completeWindows!: () => void;
  const allWindows = new Promise<void>((resolve) => (completeWindows = resolve));
  const timer = setInterval(() => {
    const now = snapshot();
    const minutes = (now.at - previous.at) / 60_000;
    for (const id of ids) perMinute[id].push(((now.counts.get(id) ?? 0) - (previous.counts.get(id) ?? 0)) / minutes);
    previous = now;
    if (perMinute.ours.length >= windows) completeWindows();
  }, windowMs);

  return {
    async finish() {
      if (perMinute.ours.length < windows) ctx.progress(`idle: waiting for the last of ${windows} idle windows of ${windowMs / 1000} s`);
      await allWindows;
      clearInterval(timer);
      const minutes = (monoMs() - started) / 60_000;
      const breakdown = { ours: [] as { query: string; perMinute: number }[], 'ours-daemon': [] as { query: string; perMinute: number }[] };
      for (const id of ['ours', 'ours-daemon'] as const) {
        const calls = new Map<string, number>();
        for (const { text } of counters.get(id)!.statements) {
          const query = text.replace(/\s+/g, ' ').trim();
          calls.set(query, (calls.get(query) ?? 0) + 1);
        }
        for (const [query, n] of calls) breakdown[id].push({ query, perMinute: n / minutes });
        breakdown[id].sort((a, b) => b.perMinute - a.perMinute);
      }
      await daemon.stop();
      await api.stop();
      for (const worker of workers) await worker.stop();
      for (const counter of counters.values()) await counter.close();
      return { perMinute, breakdown };
    },
  };
}
