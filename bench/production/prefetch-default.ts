// Issue 17, fast by default: the drain of N no-op jobs into an idle library instance at its
// default prefetch ('auto'), at prefetch 500 (the best fixed setting) and at 0 (the previous
// default), concurrency 1, 10 and 50, runs interleaved. Ours only, so it runs on a machine with
// 100 connections (50 slots take 56). Prints jobs/s, the claims it took (load does not move that
// count) and PostgreSQL's CPU per job: utime + stime of the queue's backends from /proc, so the
// server must run on this machine (the embedded one does).
//
//   npx tsc -p tsconfig.json && node dist/bench/production/prefetch-default.js [--jobs 20000] [--runs 3]
//     [--concurrency 1,10,50] [--prefetch auto,500,0]
//
// DATABASE_URL: a server where it may create databases; without it an embedded PostgreSQL is
// started (durable: fsync on). The machine is shared: jobs/s move with its load, printed per run.
import os from 'node:os';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { cpuTicks, USER_HZ } from '../cpu.js';
import { openServer } from '../db.js';
import { migrate } from '../../src/db/migrate.js';
import { createPool } from '../../src/db/pool.js';
import { silentLogger } from '../../src/log.js';
import { BroadcastQueue } from '../../src/broadcast-queue.js';

const { values } = parseArgs({
  options: {
    jobs: { type: 'string', default: '20000' },
    runs: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '1,10,50' },
    prefetch: { type: 'string', default: 'auto,500,0' },
  },
});
const jobs = Number(values.jobs);
const CAP_MS = 120_000;
interface Run {
  jobsPerSecond: number;
  claims: number;
  pgCpuUsPerJob: number;
  load: number;
}

async function drainOnce(url: string, concurrency: number, prefetch: number | 'auto'): Promise<Run> {
  const queue = new BroadcastQueue({ connectionString: url, concurrency, prefetch, migrate: false, handlers: { noop: () => null } });
  const producer = new pg.Client({ connectionString: url });
  await queue.start();
  await producer.connect();
  try {
    const backends = async () => (await producer.query(`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'broadcast-queued%'`)).rows.map((r) => r.pid as number);
    let claims = 0;
    let done = 0;
    queue.on('claimed', () => claims++);
    const drained = new Promise<void>((resolve) => queue.on('job:done', () => ++done === jobs && resolve()));
    const load = os.loadavg()[0]!;
    const before = cpuTicks(await backends());
    await producer.query(`INSERT INTO broadcast_queue_jobs (job_type) SELECT 'noop' FROM generate_series(1, $1::int)`, [jobs]);
    const started = performance.now();
    await Promise.race([drained, new Promise((resolve) => setTimeout(resolve, CAP_MS))]);
    const ms = performance.now() - started;
    const cpuMs = ((cpuTicks(await backends()) - before) * 1000) / USER_HZ;
    return { jobsPerSecond: (done / ms) * 1000, claims, pgCpuUsPerJob: (cpuMs * 1000) / jobs, load };
  } finally {
    await producer.end();
    await queue.stop();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const server = await openServer();
  console.log(`PostgreSQL ${server.version}: ${server.origin}`);
  try {
    const template = await server.createDatabase('prefetch_template');
    const setup = createPool({ connectionString: server.urlFor(template), max: 1, applicationName: 'bench-setup', log: silentLogger() });
    await migrate(setup, silentLogger());
    await setup.end();
    const settings = values.prefetch.split(',').map((p) => (p === 'auto' ? 'auto' : Number(p)) as number | 'auto');
    const cases = values.concurrency.split(',').map(Number).flatMap((c) => settings.map((prefetch) => ({ c, prefetch })));
    const results = new Map<string, Run[]>();
    for (let run = 0; run < Number(values.runs); run++) {
      for (const { c, prefetch } of cases) {
        const db = await server.createDatabase(`prefetch_${run}_${c}_${prefetch}`, template);
        const result = await drainOnce(server.urlFor(db), c, prefetch);
        await server.dropDatabase(db);
        const key = `concurrency ${c}, prefetch ${prefetch}`;
        results.set(key, [...(results.get(key) ?? []), result]);
        console.log(`${key}: ${Math.round(result.jobsPerSecond)} jobs/s, ${result.claims} claims, ${result.pgCpuUsPerJob.toFixed(1)} µs PostgreSQL CPU per job, load ${result.load.toFixed(1)}`);
      }
    }
    console.log(`\n${jobs.toLocaleString('en-US')} no-op jobs, medians (runs):`);
    for (const [key, runs] of results) {
      const rate = runs.map((r) => r.jobsPerSecond);
      console.log(`${key}: ${Math.round(median(rate))} jobs/s (${rate.map(Math.round).join(' / ')}), claims ${runs.map((r) => r.claims).join(' / ')}, PG CPU µs/job ${runs.map((r) => r.pgCpuUsPerJob.toFixed(1)).join(' / ')}, load ${runs.map((r) => r.load.toFixed(1)).join(' / ')}`);
    }
  } finally {
    await server.close();
  }
}

await main();
