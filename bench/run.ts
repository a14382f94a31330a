// `npm run bench [-- --quick]`: broadcast-queued, graphile-worker and pg-boss side by side on one
// PostgreSQL, in one run, under one Node 24 (installed on first use: see node24.ts). Prints the
// tables (PostgreSQL CPU per job too, from /proc when the server is on this machine: cpu.ts) and
// the targets of issues 5, 13, 16 and 17 checked against this run's medians, and writes
// bench/RESULTS.md. `--only=latency,throughput,enqueue,idle,stale,dependencies,broadcast` runs a
// subset (and writes bench/RESULTS.partial.md instead); `--only=rate` runs only the broadcast rate
// rows, `--rates=1000x1,1000x3` picks which (limit × daemons; messages: 3 s of sending in --quick,
// 15 s otherwise), `--autovacuum=off` switches autovacuum off on the jobs tables as runs before
// issue 13 did, `--out=FILE` writes the results there, `--daemon-node=20` runs our daemon (only)
// under that Node major, installed from the npm registry like Node 24. Environment: DATABASE_URL (else an
// embedded PostgreSQL), BENCH_NODE / BENCH_NODE_DIR (node24.ts), BENCH_NODE_ARGS (child.ts). Every process
// runs from a copy of the build taken at the start (snapshot.ts).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { nodeBinary, reexecUnderNode24 } from './node24.js';
import { REPO_ROOT, reexecFromSnapshot } from './snapshot.js';

const MEASUREMENTS = ['idle', 'latency', 'throughput', 'enqueue', 'stale', 'dependencies', 'broadcast'] as const;
/** Not in a default run: the rate rows of 'broadcast' alone. */
const EXTRA_MEASUREMENTS = ['rate'] as const;

const USAGE = `usage: npm run bench [-- OPTIONS]

broadcast-queued, graphile-worker and pg-boss side by side on one PostgreSQL (DATABASE_URL, else an
embedded one with durability off), under Node 24 (installed from the npm registry on first use).
A full run takes about 20 minutes and writes bench/RESULTS.md; with --only, bench/RESULTS.partial.md.
PostgreSQL CPU per job (the throughput runs) is read from /proc, so it needs the server on this
machine (the embedded one, or a local DATABASE_URL); otherwise those cells say n/a and why.

  --quick               a shorter run (about two minutes), fewer rows
  --only=LIST           a subset of ${MEASUREMENTS.join(',')}; or rate (the broadcast rate rows only)
  --rates=LxD,...       which broadcast rate rows: limit x daemons, e.g. 1000x1,1000x3
  --autovacuum=off      autovacuum off on the jobs tables (as runs before issue 13)
  --out=FILE            write the results to FILE
  --daemon-node=MAJOR   run our daemon (only) under that Node major
  --help                this text
`;
const FLAGS = /^--(quick|help|autovacuum=off|only=.+|rates=.+|out=.+|daemon-node=\d+)$/;

async function main(): Promise<void> {
  const given = process.argv.slice(2);
  if (given.includes('--help') || given.includes('-h')) {
    process.stdout.write(USAGE);
    return;
  }
  const unknown = given.find((a) => !FLAGS.test(a));
  if (unknown !== undefined) {
    process.stderr.write(`bench: unknown option ${JSON.stringify(unknown)}\n\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  if (await reexecUnderNode24()) return;
  if (await reexecFromSnapshot()) return;
  // Loaded only under Node ≥ 22: graphile-worker and pg-boss refuse older ones.
  const { openServer } = await import('./db.js');
  const { makePlan } = await import('./plan.js');
  const { prepareTemplates } = await import('./producers.js');
  const { describeMachine } = await import('./machine.js');
  const { startIdle } = await import('./measure/idle.js');
  const { measureLatency } = await import('./measure/latency.js');
  const { measureThroughput } = await import('./measure/throughput.js');
  const { measureEnqueue } = await import('./measure/enqueue.js');
  const { measureBroadcast } = await import('./measure/broadcast.js');
  const { measureStale } = await import('./measure/stale.js');
  const { measureDependencyCost } = await import('./measure/dependencies.js');
  const { broadcastTable, dependencyTable, queueTable, renderMarkdown, targetsTable } = await import('./report.js');
  const { closeLanes, openLanes } = await import('./child.js');

  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  // Users run PostgreSQL with autovacuum on; --autovacuum=off turns it off on the jobs tables only.
  const autovacuum = !args.includes('--autovacuum=off');
  const onlyArg = args.find((a) => a.startsWith('--only='))?.slice('--only='.length);
  const only = new Set(onlyArg ? onlyArg.split(',') : MEASUREMENTS);
  for (const name of only) if (![...MEASUREMENTS, ...EXTRA_MEASUREMENTS].includes(name as never)) throw new Error(`unknown measurement ${name}`);
  const plan = makePlan(quick);
  if (only.has('rate') && !only.has('broadcast')) plan.broadcast.fanouts = [];
  const ratesArg = args.find((a) => a.startsWith('--rates='))?.slice('--rates='.length);
  if (ratesArg) {
    plan.broadcast.rates = ratesArg.split(',').map((spec) => {
      const [limit, daemons] = spec.split('x').map(Number);
      if (!(limit! > 0) || !(daemons! > 0)) throw new Error(`--rates: bad case ${spec} (want LIMITxDAEMONS)`);
      return { limit: limit!, daemons: daemons!, messages: limit! * (quick ? 3 : 15) };
    });
  }
  const daemonNodeArg = args.find((a) => a.startsWith('--daemon-node='))?.slice('--daemon-node='.length);
  if (daemonNodeArg) process.env.BENCH_DAEMON_NODE = nodeBinary(Number(daemonNodeArg));
  const daemonNode = daemonNodeArg ? execFileSync(process.env.BENCH_DAEMON_NODE!, ['--version']).toString().trim() : null;
  const machine = describeMachine();
  const startedAt = new Date();
  const t0 = performance.now();
  const progress = (message: string) => console.error(`bench ${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s  ${message}`);

  const server = await openServer();
  progress(`PostgreSQL ${server.version}: ${server.origin}`);
  if (daemonNodeArg) progress(`our daemon runs under ${process.env.BENCH_DAEMON_NODE}`);
  if (quick) progress(`--quick skips: ${plan.skipped.join('; ')}`);
  try {
    const templates = await prepareTemplates(server, { autovacuum });
    progress(`migrated a template database for each queue (autovacuum ${autovacuum ? 'as the server has it' : 'off on the jobs tables'})`);
    const ctx = { server, plan, templates, progress };
    // The idle processes and the worker processes start side by side.
    const needLanes = only.has('latency') || only.has('throughput');
    const [idle, lanes] = await Promise.all([only.has('idle') ? startIdle(ctx) : null, needLanes ? openLanes(ctx, 'queue') : []]);
    progress('queues started');
    const latency = only.has('latency') ? await measureLatency(ctx, lanes) : undefined;
    const throughput = only.has('throughput') ? await measureThroughput(ctx, lanes) : undefined;
    await closeLanes(lanes);
    const enqueue = only.has('enqueue') ? await measureEnqueue(ctx) : undefined;
    const stale = only.has('stale') ? await measureStale(ctx) : undefined;
    const dependencies = only.has('dependencies') ? await measureDependencyCost(server, plan.dependencies, progress) : undefined;
    const broadcast = only.has('broadcast') || only.has('rate') ? await measureBroadcast(ctx) : undefined;
    const idleResult = (await idle?.finish()) ?? undefined;

    const results = {
      command: `npm run bench${args.length ? ` -- ${args.join(' ')}` : ''}`,
      startedAt,
      durationS: (performance.now() - t0) / 1000,
      plan,
      machine,
      loadAfter: os.loadavg().map((l) => l.toFixed(2)).join(' '),
      server: { origin: server.origin, version: server.version, autovacuum: server.autovacuum },
      autovacuumOnJobTables: autovacuum,
      daemonNode,
      latency,
      throughput,
      enqueue,
      idle: idleResult,
      stale,
      dependencies,
      broadcast,
    };
    const tables = [queueTable(results), dependencyTable(results), broadcastTable(results)].filter(Boolean).join('\n\n');
    console.log(`\n${tables}\n\n${targetsTable(results)}\n`);
    const outArg = args.find((a) => a.startsWith('--out='))?.slice('--out='.length);
    const file = outArg ? path.resolve(outArg) : path.join(REPO_ROOT, 'bench', `RESULTS${onlyArg ? '.partial' : ''}.md`);
    writeFileSync(file, renderMarkdown(results, { tables }) + keptSection(file));
    progress(`wrote ${file}`);
  } finally {
    await server.close();
  }
}

/**
 * The "production-shaped data" section is written by hand from bench/production/*.ts and the
 * stale-statistics and rate rows; a new run of this bench keeps it as it was.
 */
function keptSection(file: string): string {
  const previous = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const at = previous.indexOf('\n## Production-shaped data');
  return at < 0 ? '' : previous.slice(at);
}

main().then(
  () => process.exit(process.exitCode ?? 0),
  (error: unknown) => {
    console.error('bench failed:', error);
    process.exit(1);
  },
);
