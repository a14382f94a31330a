// The tables (stdout and bench/RESULTS.md) and the check against issue 5's targets.
import type { Machine } from './machine.js';
import type { BroadcastResults } from './measure/broadcast.js';
import type { EnqueueRun } from './measure/enqueue.js';
import type { IdleResult } from './measure/idle.js';
import type { LatencyRun } from './measure/latency.js';
import type { DependencyResults } from './measure/dependencies.js';
import { STALE_CONFIGS, type StaleResults } from './measure/stale.js';
import type { ThroughputResults, ThroughputRun } from './measure/throughput.js';
import { CONFIGS, PEERS, settingsOf, type ConfigId } from './peers.js';
import type { Plan } from './plan.js';
import { cell, num, ratio, summarize } from './stats.js';
import { SPACING_MARGIN } from '../src/telegram/rate-limiter.js';

export interface Results {
  command: string;
  startedAt: Date;
  durationS: number;
  plan: Plan;
  machine: Machine;
  loadAfter: string;
  server: { origin: string; version: string; autovacuum: string };
  /** False with --autovacuum=off (switched off on the jobs tables). */
  autovacuumOnJobTables: boolean;
  /** The Node our daemon binary ran under with --daemon-node, else null (the bench's own). */
  daemonNode: string | null;
  latency?: Record<ConfigId, LatencyRun[]>;
  throughput?: ThroughputResults;
  enqueue?: Partial<Record<ConfigId, EnqueueRun[]>>;
  idle?: IdleResult;
  stale?: StaleResults;
  dependencies?: DependencyResults;
  broadcast?: BroadcastResults;
}

/** Issue 17: an idle daemon sends at most 3 statements a minute (the sweep is 2 of them). */
const IDLE_STATEMENTS_PER_MINUTE = 3;

type Series = Partial<Record<ConfigId, number[]>>;
interface RowOptions {
  lowerIsBetter: boolean;
  words?: [string, string];
  notes?: Partial<Record<ConfigId, string>>;
}

/**
 * One measurement across the configurations. A peer's cell ends with how ours compares: ours' best
 * configuration in that row (defaults, or prefetch where measured) against that peer, by medians.
 */
function row(label: string, series: Series, { lowerIsBetter, words, notes = {} }: RowOptions): string[] {
  const oursMedians = CONFIGS.filter((c) => c.kind === 'ours' && series[c.id]?.length).map((c) => summarize(series[c.id]!).median);
  const ours = oursMedians.length ? (lowerIsBetter ? Math.min(...oursMedians) : Math.max(...oursMedians)) : NaN;
  return [
    label,
    ...CONFIGS.map(({ id, kind, throughputOnly }) => {
      const values = series[id];
      if (!values?.length) return notes[id] ?? (throughputOnly ? '—' : 'n/a');
      const s = summarize(values);
      const compared = kind === 'ours' ? '' : ratio(ours, s.median, lowerIsBetter, words);
      return [cell(s), notes[id], compared && `**${compared}**`].filter(Boolean).join(' · ');
    }),
  ];
}

/** PostgreSQL CPU per job of each configuration's throughput runs at one concurrency; n/a with the reason where /proc could not tell. */
function pgCpuRow(c: string, byConfig: Partial<Record<ConfigId, ThroughputRun[]>>, capMs: number): string[] {
  const series: Series = {};
  const notes: Partial<Record<ConfigId, string>> = {};
  for (const [id, runs] of Object.entries(byConfig) as [ConfigId, ThroughputRun[]][]) {
    const measured = runs.flatMap((x) => ('usPerJob' in x.pgCpu ? [x.pgCpu] : []));
    if (measured.length) series[id] = measured.map((x) => x.usPerJob);
    const said: string[] = [];
    const unavailable = [...new Set(runs.flatMap((x) => ('unavailable' in x.pgCpu ? [x.pgCpu.unavailable] : [])))];
    if (unavailable.length) said.push(`n/a${measured.length ? ` in ${runs.length - measured.length} of ${runs.length} runs` : ''}: ${unavailable.join('; ')}`);
    const exited = measured.reduce((sum, x) => sum + x.exited, 0);
    if (exited) said.push(`${exited} backend${exited > 1 ? 's' : ''} exited mid-run, CPU not counted`);
    if (runs.some((x) => x.capped)) said.push(`per job started in ${capMs / 1000} s`);
    if (said.length) notes[id] = said.join(', ');
  }
  return row(`PostgreSQL CPU per job, concurrency ${c} (µs)`, series, { lowerIsBetter: true, words: ['less', 'more'], notes });
}

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

const pick = <T>(data: Partial<Record<ConfigId, T[]>> | undefined, f: (r: T) => number): Series =>
  Object.fromEntries(Object.entries(data ?? {}).map(([id, runs]) => [id, (runs as T[]).map(f)]));

/** A run in which no job ran has no cost per job. */
const finite = (series: Series): Series => Object.fromEntries(Object.entries(series).map(([id, values]) => [id, values!.filter(Number.isFinite)]));

export function queueTable(r: Results): string {
  const rows: string[][] = [];
  const faster = { lowerIsBetter: true };
  if (r.latency) {
    const partial: Partial<Record<ConfigId, string>> = {};
    for (const [id, runs] of Object.entries(r.latency) as [ConfigId, LatencyRun[]][]) {
      const missed = runs.filter((x) => x.started < x.inserts);
      if (missed.length) partial[id] = `${runs.map((x) => x.started).join('/')} of ${runs[0]!.inserts} started within ${r.plan.latency.graceMs / 1000} s of the last insert`;
    }
    rows.push(row('Wake latency p50 (ms)', pick(r.latency, (x) => x.p50), { ...faster, notes: partial }));
    rows.push(row('Wake latency p90 (ms)', pick(r.latency, (x) => x.p90), faster));
    rows.push(row('Wake latency p99 (ms)', pick(r.latency, (x) => x.p99), faster));
    rows.push(row('Wake latency max (ms)', pick(r.latency, (x) => x.max), faster));
  }
  if (r.throughput) {
    for (const [c, byConfig] of Object.entries(r.throughput)) {
      const capped: Partial<Record<ConfigId, string>> = {};
      for (const [id, runs] of Object.entries(byConfig)) if (runs.some((x) => x.capped)) capped[id as ConfigId] = `capped at ${r.plan.throughput.capMs / 1000} s`;
      rows.push(row(`Throughput, concurrency ${c} (jobs/s)`, pick(byConfig, (x) => x.jobsPerSecond), { lowerIsBetter: false, notes: capped }));
    }
    for (const [c, byConfig] of Object.entries(r.throughput)) rows.push(pgCpuRow(c, byConfig, r.plan.throughput.capMs));
    for (const [c, byConfig] of Object.entries(r.throughput)) {
      const capped: Partial<Record<ConfigId, string>> = {};
      for (const [id, runs] of Object.entries(byConfig)) if (runs.some((x) => x.capped)) capped[id as ConfigId] = `per job started in ${r.plan.throughput.capMs / 1000} s`;
      rows.push(row(`Queue process CPU per job, concurrency ${c} (µs)`, finite(pick(byConfig, (x) => x.workerCpuUsPerJob)), { lowerIsBetter: true, words: ['less', 'more'], notes: capped }));
    }
  }
  if (r.enqueue) {
    const same = { 'gw-default': 'same SQL as fastest' };
    rows.push(row(`Enqueue, ${r.plan.enqueue.jobs.toLocaleString('en-US')} single-row inserts (jobs/s)`, pick(r.enqueue, (x) => x.singlePerSecond), { lowerIsBetter: false, notes: same }));
    rows.push(row(`Enqueue, one ${r.plan.enqueue.jobs.toLocaleString('en-US')}-row insert (jobs/s)`, pick(r.enqueue, (x) => x.bulkPerSecond), { lowerIsBetter: false, notes: same }));
  }
  if (r.stale) {
    const notMeasured = Object.fromEntries(CONFIGS.filter((c) => !STALE_CONFIGS.includes(c.id)).map((c) => [c.id, '—']));
    const { jobs, concurrency, capMs } = r.plan.stale;
    for (const [state, label] of [['current', 'statistics current'], ['analyzedEmpty', 'jobs table analyzed while empty']] as const) {
      const capped: Partial<Record<ConfigId, string>> = { ...notMeasured };
      for (const [id, runs] of Object.entries(r.stale[state])) if (runs.some((x) => x.capped)) capped[id as ConfigId] = `capped at ${capMs / 1000} s`;
      rows.push(row(`${jobs.toLocaleString('en-US')}-job burst at concurrency ${concurrency}, ${label} (jobs/s)`, pick(r.stale[state], (x) => x.jobsPerSecond), { lowerIsBetter: false, notes: capped }));
    }
    rows.push(['Analyzed-empty rate ÷ current rate', ...CONFIGS.map(({ id }) => {
      const a = r.stale!.analyzedEmpty[id];
      const c = r.stale!.current[id];
      return a?.length && c?.length ? `${num(summarize(a.map((x) => x.jobsPerSecond)).median / summarize(c.map((x) => x.jobsPerSecond)).median)}×` : '—';
    })]);
  }
  if (r.idle) {
    const perMinute: Series = Object.fromEntries(Object.entries(r.idle.perMinute).filter(([id]) => id !== 'ours-daemon'));
    rows.push(row('Idle: statements per minute', perMinute, { lowerIsBetter: true, words: ['fewer', 'more'] }));
  }
  const less = { lowerIsBetter: true, words: ['less', 'more'] as [string, string] };
  if (r.latency) rows.push(row('Peak RSS, wake-latency run (MB)', pick(r.latency, (x) => x.rssMb), less));
  if (r.throughput) {
    const top = Math.max(...Object.keys(r.throughput).map(Number));
    rows.push(row(`Peak RSS, throughput run at concurrency ${top} (MB)`, pick(r.throughput[top], (x) => x.rssMb), less));
  }
  return table(['Measurement', ...CONFIGS.map((c) => c.label)], rows);
}

/**
 * Issue 16: what job dependencies cost jobs without any, ours only. Each round's rate is divided
 * by the same round's rate with the triggers off (taken just before it), so the ratios are not
 * compared across rounds whose load differed; the trigger share does not depend on the load.
 */
export function dependencyTable(r: Results): string {
  const d = r.dependencies;
  if (!d) return '';
  const pct = (xs: number[]) => cell(summarize(xs.map((x) => x * 100)), ' %');
  const labels = { unused: 'unused (no job depends on anything)', 'in use': 'in use (2,000 jobs wait on 200 open ones of another workflow)', 'with dependents': 'with dependents (1 job in 10 of the burst releases one)' } as const;
  const rows = (['unused', 'in use', 'with dependents'] as const).map((mode) => [
    labels[mode],
    `${cell(summarize(d.rates[mode].map((rate, i) => rate / d.rates.off[i]!)), '×')}`,
    pct(d.shares[mode]),
  ]);
  rows.unshift(['triggers off (before the feature)', `${cell(summarize(d.rates.off))} jobs/s`, '—']);
  return table([`Dependencies: ${d.jobs.toLocaleString('en-US')} independent jobs claimed and completed in batches of ${d.batch} (ours, ${d.rates.off.length} rounds)`, 'jobs/s ÷ same round with triggers off', 'share of a completion statement in the dependency triggers'], rows);
}

export function broadcastTable(r: Results): string {
  const b = r.broadcast;
  const rows: string[][] = [];
  if (b) {
    for (const [subscribers, runs] of Object.entries(b.fanout)) {
      const n = Number(subscribers).toLocaleString('en-US');
      rows.push([`Fan-out to ${n} subscribers (s)`, cell(summarize(runs.map((x) => x.ms / 1000)))]);
      rows.push([`Daemon peak RSS, ${n} fan-out (MB)`, cell(summarize(runs.map((x) => x.rssMb)))]);
    }
    for (const { case: c, runs } of b.rate) {
      const label = `${c.limit}/s, ${c.daemons} daemon${c.daemons > 1 ? 's' : ''}, ${c.messages.toLocaleString('en-US')} messages`;
      rows.push([`${label}: delivered/s (share of limit)`, `${cell(summarize(runs.map((x) => x.perSecond)))} (${cell(summarize(runs.map((x) => x.share * 100)), ' %')})`]);
      rows.push([`${label}: 429s · max calls in any 1 s`, `${runs.map((x) => x.tooMany).join('/')} · ${runs.map((x) => x.maxInWindow).join('/')}`]);
      rows.push([`${label}: daemons that sent · peak RSS (MB) · daemon CPU (s)`, `${runs.map((x) => x.daemonsUsed).join('/')} · ${cell(summarize(runs.map((x) => x.rssMb)))} · ${runs.every((x) => x.cpuS !== undefined) ? cell(summarize(runs.map((x) => x.cpuS))) : 'n/a'}`]);
    }
  }
  if (r.idle) rows.push(['Idle daemon binary: statements per minute', cell(summarize(r.idle.perMinute['ours-daemon'] ?? []))]);
  for (const skipped of r.plan.skipped.filter((s) => !s.startsWith('smaller'))) rows.push([skipped, 'skipped (--quick)']);
  return table(['Broadcast, our daemon against the Bot API stand-in', 'median (min–max) or per run'], rows);
}

interface Target {
  name: string;
  measured: string;
  met: boolean;
}

export function targets(r: Results): Target[] {
  const out: Target[] = [];
  const med = (xs: number[] | undefined) => (xs?.length ? summarize(xs).median : NaN);
  if (r.latency) {
    const ours = med(r.latency.ours.map((x) => x.p50));
    const graphile = Math.min(med(r.latency['gw-fast'].map((x) => x.p50)), med(r.latency['gw-default'].map((x) => x.p50)));
    out.push({ name: 'Wake p50 ≤ 0.7 × graphile-worker’s (its better configuration)', measured: `${num(ours)} ms vs ${num(graphile)} ms = ${num(ours / graphile)}×`, met: ours <= 0.7 * graphile });
  }
  // Issue 17 asks for all of these in one run, so they are checked against this run's medians only.
  const issue17: Target[] = [];
  if (r.latency) {
    const ours = med(r.latency.ours.map((x) => x.p50));
    const fastest = med(r.latency['gw-fast'].map((x) => x.p50));
    issue17.push({ name: 'Issue 17: wake p50 ÷ graphile-worker fastest’s ≤ 0.7', measured: `${num(ours)} ms ÷ ${num(fastest)} ms = ${num(ours / fastest)}×`, met: ours <= 0.7 * fastest });
  }
  if (r.throughput) {
    const rate = (runs: ThroughputRun[] | undefined) => med(runs?.map((x) => x.jobsPerSecond));
    for (const [c, byConfig] of Object.entries(r.throughput)) {
      const ours = Math.max(rate(byConfig.ours), rate(byConfig['ours-prefetch']));
      const graphile = rate(byConfig['gw-fast']);
      issue17.push({ name: `Issues 5 and 17: drain at concurrency ${c}, ours (better of defaults and prefetch 500) ÷ graphile-worker fastest ≥ 1.2`, measured: `${num(ours)} ÷ ${num(graphile)} jobs/s = ${num(ours / graphile)}×`, met: ours >= 1.2 * graphile });
    }
    for (const [c, byConfig] of Object.entries(r.throughput)) {
      const defaults = rate(byConfig.ours);
      const prefetch = rate(byConfig['ours-prefetch']);
      issue17.push({ name: `Issue 17: drain at concurrency ${c}, ours defaults ÷ ours prefetch 500 ≥ 0.9`, measured: `${num(defaults)} ÷ ${num(prefetch)} jobs/s = ${num(defaults / prefetch)}×`, met: defaults >= 0.9 * prefetch });
    }
  }
  out.push(...issue17);
  if (r.latency && r.throughput) {
    const met = issue17.filter((t) => t.met).length;
    out.push({ name: 'Issue 17: the wake, drain and defaults targets above, all in this one run', measured: `${met} of ${issue17.length} met`, met: met === issue17.length });
  }
  if (r.idle) {
    for (const id of ['ours', 'ours-daemon'] as const) {
      // Over all windows together: a 30 s sweep and a 2-minute check land in a short window 0 or 1 times.
      const windows = r.idle.perMinute[id] ?? [];
      const v = windows.length ? windows.reduce((sum, x) => sum + x, 0) / windows.length : NaN;
      out.push({ name: `Issue 17: idle ${id === 'ours' ? 'library instance' : 'daemon binary'} ≤ ${IDLE_STATEMENTS_PER_MINUTE} statements/min (mean of the windows)`, measured: `${num(v)}/min`, met: v <= IDLE_STATEMENTS_PER_MINUTE });
    }
  }
  if (r.dependencies) {
    // The rates swing more than 5 % between rounds on a shared machine; the share does not.
    const d = r.dependencies;
    const share = Math.max(med(d.shares.unused), med(d.shares['in use'])) * 100;
    const ratio = (mode: 'unused' | 'in use') => num(med(d.rates[mode].map((rate, i) => rate / d.rates.off[i]!)));
    out.push({ name: 'Issue 16: dependencies cost independent jobs ≤ 5 % (the triggers\' share of a completion statement, unused and in use)', measured: `${num(share)} % at most; jobs/s ${ratio('unused')}× and ${ratio('in use')}× of triggers off (medians)`, met: share <= 5 });
  }
  if (r.broadcast) {
    for (const { case: c, runs } of r.broadcast.rate) {
      const share = Math.min(...runs.map((x) => x.share));
      const tooMany = runs.reduce((a, x) => a + x.tooMany, 0);
      // The limiter paces at limit ÷ SPACING_MARGIN; a gap between batches shows as a share below it.
      const paced = 0.99 / SPACING_MARGIN;
      out.push({ name: `${c.limit}/s with ${c.daemons} daemon(s): ≥ ${num(paced * 100)} % of the limit (99 % of the paced rate), 0 × 429`, measured: `worst run ${num(share * 100)} %, ${tooMany} × 429`, met: share >= paced && tooMany === 0 });
    }
    for (const { case: c, runs } of r.broadcast.rate.filter((x) => x.case.limit >= 1000)) {
      const rss = Math.max(...runs.map((x) => x.rssMb));
      out.push({ name: `Issue 13: peak RSS sending at ${c.limit}/s with ${c.daemons} daemon(s) < 120 MB${r.daemonNode ? ` (Node ${r.daemonNode})` : ''}`, measured: `worst run ${num(rss)} MB`, met: rss < 120 });
    }
    const million = r.broadcast.fanout[1_000_000];
    if (million?.length) {
      const s = Math.max(...million.map((x) => x.ms / 1000));
      const rss = Math.max(...million.map((x) => x.rssMb));
      out.push({ name: '1M fan-out < 15 s and < 150 MB peak RSS', measured: `worst run ${num(s)} s, ${num(rss)} MB`, met: s < 15 && rss < 150 });
    }
  }
  return out;
}

export function targetsTable(r: Results): string {
  return table(['Target (issue 5, and 13, 16 or 17 where it says so)', 'Measured', 'Met'], targets(r).map((t) => [t.name, t.measured, t.met ? 'yes' : '**NO**']));
}

function settingsTable(r: Results): string {
  const cs = r.plan.throughput.concurrencies;
  return table(
    ['Configuration', 'Wake latency and idle', `Throughput at concurrency c (${cs.join(', ')}); shown for c = ${cs[1] ?? cs[0]}`],
    CONFIGS.map((c) => [c.label, c.throughputOnly ? '(throughput only)' : `\`${JSON.stringify(settingsOf(c.id))}\``, `\`${JSON.stringify(settingsOf(c.id, cs[1] ?? cs[0]))}\``]),
  );
}

export function renderMarkdown(r: Results, sections: { tables: string }): string {
  const m = r.machine;
  const breakdown = (id: 'ours' | 'ours-daemon') =>
    (r.idle?.breakdown[id] ?? []).slice(0, 8).map((q) => `- ${num(q.perMinute)}/min: \`${q.query.slice(0, 160)}${q.query.length > 160 ? '…' : ''}\``).join('\n');
  return `# Benchmark results

Produced by \`${r.command}\` on ${r.startedAt.toISOString()} in ${Math.round(r.durationS)} s${r.plan.quick ? ' (**--quick**: fewer runs and smaller N; see below)' : ''}.

Absolute numbers drift on a shared machine; the ratios, measured side by side in one run on the same PostgreSQL, are what count.
Every cell is the median over runs with the spread (min–max) in brackets; a peer's cell ends with how ours compares, from the medians, taking ours' better configuration in that row (the prefetch column is measured for throughput only).

## Machine
- broadcast-queued at ${m.revision}
- ${m.cpus} CPUs (${m.cpuModel}), ${m.memoryGb} GB memory, ${m.kernel}; load average ${m.loadAverage} at start, ${r.loadAfter} at the end (other work shares this machine)
- Node ${m.node} for the bench and all three queues, ours included${r.daemonNode ? ` (our daemon binary, in the broadcast rows: Node ${r.daemonNode}, --daemon-node)` : ''}${m.npmRunNode ? ` (npm ran the entry script under ${m.npmRunNode})` : ''}
- PostgreSQL ${r.server.version}: ${r.server.origin}
- Packages: ${Object.entries(m.packages).map(([k, v]) => `${k} ${v}`).join(', ')}

## Settings
Each queue runs in a process of its own, in a database of its own. Handlers are no-ops; jobs are inserted by the bench process the way each queue's users insert them: ours with \`INSERT INTO broadcast_queue_jobs\`, graphile-worker with \`graphile_worker.add_job\` / \`add_jobs\`, pg-boss with \`send()\` / \`insert()\`.

${settingsTable(r)}

- ours: \`new BroadcastQueue({ connectionString, handlers: { noop }, ...above })\`; everything else at its defaults (fallback sweep 30 s). "prefetch 500" is the README's setting for many short jobs of your own (claims that many ahead of free slots; graphile-worker's fastest profile keeps a local queue of the same size).
- graphile-worker fastest: the configuration its performance page (worker.graphile.org/docs/performance) used for its quick stats.
- pg-boss 12 has a LISTEN/NOTIFY mode: \`useListenNotify: true\` on the instance and \`notify: true\` on the queue. pg-boss processes one batch per worker at a time and, without \`burstWhenBatchFull\`, waits its polling interval after every fetch, so its fast profile fetches ${String((settingsOf('boss-listen') as any).work.batchSize)} jobs per round trip and keeps fetching while batches come back full; each batch's jobs run one after another, so c workers run at most c jobs at once.
- Defaults mean the library's defaults apart from the concurrency under test. pg-boss at its defaults takes one job per worker every 2 s, so its runs are capped and rated by what they finished.

## Queues side by side
${sections.tables}

## Against issue 5's (and 13's, 16's and 17's) targets
${targetsTable(r)}

## What ours sends while idle (counted on the wire, per minute over the idle windows)
Library instance:
${breakdown('ours') || '- (not available)'}

Daemon binary:
${breakdown('ours-daemon') || '- (not available)'}

## Method
- Wake latency: ${r.plan.latency.inserts.toLocaleString('en-US')} single-row inserts per run, ${r.plan.latency.gapMs.join('–')} ms apart start to start (the same pseudo-random gaps for every queue), ${r.plan.latency.runs} runs interleaved across queues; from the insert call to the no-op handler starting, both stamped with CLOCK_MONOTONIC (process.hrtime), which every process on the machine shares. A job not started ${r.plan.latency.graceMs / 1000} s after the last insert counts as never.
- Throughput: ${r.plan.throughput.jobs.toLocaleString('en-US')} jobs queued with one statement into an idle worker (the same processes and databases as the wake-latency runs, each queue restarted at concurrency c); from the insert's return to the database showing every job completed; ${r.plan.throughput.runs} runs per queue and concurrency, interleaved, the jobs table emptied with TRUNCATE between runs (which leaves it "never analyzed": the planner measures its size when it plans) and autovacuum ${r.autovacuumOnJobTables ? `as the server has it (${r.server.autovacuum}), so an autoanalyze that saw a table empty between runs slows the next one, as it would a user's` : 'off on the jobs tables of every queue (--autovacuum=off), so every run starts from the state of the first'}; runs still going after ${r.plan.throughput.capMs / 1000} s are stopped and rated by what they finished.
- PostgreSQL CPU per job (throughput runs): utime + stime from /proc/<pid>/stat of the client backends of that queue's database (pg_stat_activity; the bench's own producer connection, which inserts and polls, left out, and autovacuum workers, which come and go), read before the insert and after the last completion, over the union of the backends seen at both reads (one that connected in between counts from its start), divided by the jobs that ran; 10 ms clock ticks. A backend that exits in between takes its CPU since the first read with it (the cell says how many did). Only for a server on this machine: where /proc does not show a listed pid as that database's backend, the cell says n/a and why (bench/cpu.ts).
- Queue process CPU per job (throughput runs): utime + stime of the queue's worker process (bench/worker.ts: the library with its handlers, nothing else) over the same window, divided by the jobs that ran. With PostgreSQL's it is what a job costs the machine: on 2 cores, 2 s of CPU per second is the ceiling for both together.
- Stale statistics: ${r.plan.stale.jobs.toLocaleString('en-US')} jobs queued with one statement into each queue's fastest profile at concurrency ${r.plan.stale.concurrency}, ${r.plan.stale.runs} run(s) per queue and state: "statistics current" after TRUNCATE alone, "analyzed while empty" after TRUNCATE, a first burst drained and ANALYZE — the state autoanalyze leaves a jobs table in after a burst drains (its pages on record, no pending row in them); runs still going after ${r.plan.stale.capMs / 1000} s are rated by what they finished (bench/measure/stale.ts).
- Dependencies (ours only): ${r.plan.dependencies.jobs.toLocaleString('en-US')} independent jobs per round through the daemon's Claimer and Recorder in batches of ${r.plan.dependencies.batch}, timed from the first claim to the last completion, ${r.plan.dependencies.rounds} rounds of four modes in turn (the dependency triggers disabled; on and unused; on with 2,000 jobs waiting on another workflow; on with one job in ten releasing a dependent); then EXPLAIN ANALYZE of 35 completion statements per mode for the triggers' share of their execution time (bench/measure/dependencies.ts; \`node dist/bench/production/dependency-cost.js\` runs it alone).
- Enqueue: ${r.plan.enqueue.jobs.toLocaleString('en-US')} jobs, ${r.plan.enqueue.runs} runs, one connection, no worker running.
- Idle: from when every idle queue was listening, consecutive ${r.plan.idle.windowMs / 1000} s windows while the other measurements ran; statements counted on the wire by a proxy in front of each queue's database (every simple query and every extended-protocol Execute), the same for every queue (bench/measure/idle.ts says why not the server's counters).
- Broadcast: our daemon binary (\`bin/broadcast-queued\`) with DATABASE_URL, TELEGRAM_BOT_TOKEN, TELEGRAM_API_ROOT and BQ_RATE_LIMIT, against src/testing/fake-bot-api.ts in a process of its own answering after ${r.plan.broadcast.apiLatencyMs} ms and enforcing the same limit (429 past it in any rolling second). Rate runs use BQ_CONCURRENCY=1 so that each daemon takes one of the broadcasts. Peak RSS is VmHWM from /proc, reset between runs of a long-lived process.
${r.plan.skipped.length ? `- Skipped in --quick: ${r.plan.skipped.join('; ')}.` : ''}

Reproduce with \`npm run bench\` (about 25 minutes) or \`npm run bench -- --quick\` (about two). DATABASE_URL runs it on your own PostgreSQL (it creates and drops databases named bench_<pid>_*). Under Node < 22 the entry script installs node@24 into node_modules/.cache/bench-node24 (BENCH_NODE_DIR to move it, BENCH_NODE to use a binary you have); BENCH_NODE_ARGS passes flags such as \`--cpu-prof --cpu-prof-dir=/tmp/prof\` to every child process; \`--daemon-node=20\` (or 22, 24) runs our daemon binary under that Node, installed from the npm registry the same way; \`--autovacuum=off\` switches autovacuum off on the jobs tables.
`;
}
