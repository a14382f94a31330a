// What the dashboard's Subscribers page and its import cost on a big table: 1,000,000 subscribers
// (13 languages, two or three tags each from ~1,000, 2% opted out, 4% unreachable), loaded with
// generate_series. Reports the exact grouped count (what the page's first view waits for), the page
// with kept counts, a lookup by chat id, and an import of --import-rows rows (and as many bad rows)
// through the upload, with the event loop's longest stall while it runs.
//
//   npx tsc -p tsconfig.json && nice -n 10 node dist/bench/production/dashboard-subscribers.js
//     [--subscribers 1000000] [--runs 10] [--import-rows 100000]
//
// DATABASE_URL: a server where it may create a database; without it an embedded PostgreSQL is started.
import os from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { openServer } from '../db.js';
import { migrate } from '../../src/db/migrate.js';
import { createPool } from '../../src/db/pool.js';
import { silentLogger } from '../../src/log.js';
import { BroadcastQueue } from '../../src/broadcast-queue.js';
import { startAdminServer } from '../../src/http/admin-server.js';
import { countSubscribers } from '../../src/broadcast/subscriber-counts.js';

const { values: args } = parseArgs({
  options: { subscribers: { type: 'string', default: '1000000' }, runs: { type: 'string', default: '10' }, 'import-rows': { type: 'string', default: '100000' } },
});
const TOKEN = 'bench-dashboard-token-0123456789';
const loadAverage = (): string => os.loadavg().map((l) => l.toFixed(1)).join(' / ');
/**
 * The longest stretch of CPU time the process spent between two turns of a 10 ms timer: how long
 * the event loop was held, whatever the machine's load (wall-clock stalls here mostly measure
 * waiting for a core on a shared machine).
 */
function loopHold(): { stop(): number } {
  let last = process.cpuUsage();
  let max = 0;
  const timer = setInterval(() => {
    const now = process.cpuUsage();
    max = Math.max(max, (now.user - last.user + now.system - last.system) / 1000);
    last = now;
  }, 10);
  return { stop: () => (clearInterval(timer), max) };
}

const stats = (t: number[]) => {
  const s = [...t].sort((a, b) => a - b);
  const at = (p: number) => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]!;
  return `${at(0.5).toFixed(0)} / ${at(0.9).toFixed(0)} / ${s[s.length - 1]!.toFixed(0)} ms`;
};

async function main(): Promise<void> {
  const server = await openServer();
  const name = await server.createDatabase('dashboard_subscribers');
  const url = server.urlFor(name);
  const pool = createPool({ connectionString: url, max: 4, applicationName: 'bq-bench-subscribers', log: silentLogger() });
  let queue: BroadcastQueue | null = null;
  try {
    await migrate(pool, silentLogger());
    const total = Number(args.subscribers);
    const generated = performance.now();
    await pool.query(`INSERT INTO broadcast_subscribers (chat_id, opted_out, unreachable_reason, language_code, tags, attributes, subscribed_at)
      SELECT g, g % 50 = 0, CASE WHEN g % 23 = 0 THEN 'blocked' END,
             (ARRAY['en','ru','es','pt-br','de','fr','it','uk','tr','id','ar','fa', NULL])[1 + (g::bigint * 7919) % 13],
             CASE WHEN g % 4 = 0 THEN '{}'::text[] ELSE ARRAY['plan-' || (g % 3), 'src-' || (g % 40)] || CASE WHEN g % 10 = 0 THEN ARRAY['ref-' || (g % 1000)] ELSE '{}' END END,
             jsonb_build_object('plan', 'p' || (g % 3)), now() - (g % 1000) * interval '1 hour'
        FROM generate_series(1, $1::int) g`, [total]);
    await pool.query('VACUUM ANALYZE broadcast_subscribers');
    console.log(`PostgreSQL ${server.version} (${server.origin}); ${total} subscribers generated in ${((performance.now() - generated) / 1000).toFixed(0)} s; load average ${loadAverage()} on ${os.availableParallelism()} cores`);
    const runs = Number(args.runs);

    const direct: number[] = [];
    for (let i = 0; i < runs; i++) direct.push((await countSubscribers(pool)).duration_ms);
    console.log(`countSubscribers (exact: reach + by language, and by tag, in parallel): ${stats(direct)} (median / p90 / max)`);

    queue = new BroadcastQueue({ connectionString: url, cleanupDays: 0, ledgerRetentionDays: 0, log: silentLogger() });
    await queue.start();
    const admin = await startAdminServer(queue, { port: 0, apiToken: TOKEN, log: silentLogger(), requestTimeoutMs: 120_000 });
    try {
      const login = await fetch(`${admin.url}/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${TOKEN}` });
      const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
      const get = async (path: string) => {
        const started = performance.now();
        const res = await fetch(`${admin.url}${path}`, { headers: { cookie } });
        const text = await res.text();
        if (res.status !== 200) throw new Error(`${path} answered ${res.status}: ${text.slice(0, 300)}`);
        return { ms: performance.now() - started, text };
      };
      const first = await get('/subscribers');
      const kept: number[] = [];
      const lookup: number[] = [];
      for (let i = 0; i < runs; i++) {
        kept.push((await get('/subscribers')).ms);
        lookup.push((await get(`/subscribers?chat_id=${1 + Math.floor(Math.random() * total)}`)).ms);
      }
      console.log(`GET /subscribers, first view (counts the table): ${first.ms.toFixed(0)} ms`);
      console.log(`GET /subscribers, counts kept: ${stats(kept)}`);
      console.log(`GET /subscribers?chat_id=… (kept counts + primary key lookup): ${stats(lookup)}`);

      // The same machine's stalls with nothing to do, for comparison.
      const idle = monitorEventLoopDelay({ resolution: 10 });
      idle.enable();
      const idleHold = loopHold();
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      idle.disable();
      console.log(`event loop, idle for 3 s: wall-clock stall max ${(idle.max / 1e6).toFixed(0)} ms, p99 ${(idle.percentile(99) / 1e6).toFixed(0)} ms; CPU held between timer turns max ${idleHold.stop().toFixed(0)} ms`);
      const csrf = /<meta name="bq-csrf" content="([^"]+)">/.exec(first.text)![1]!;
      const rows = Number(args['import-rows']);
      for (const [label, line] of [['good rows', (i: number) => `${total + 1 + i},en,imported;bench,pro`], ['bad rows', (i: number) => `x${i},en,,`]] as const) {
        const body = ['chat_id,language_code,tags,plan', ...Array.from({ length: rows }, (_, i) => line(i))].join('\n');
        const delay = monitorEventLoopDelay({ resolution: 10 });
        delay.enable();
        const hold = loopHold();
        const started = performance.now();
        const res = await fetch(`${admin.url}/subscribers/import?name=bench.csv`, { method: 'POST', headers: { cookie, 'x-csrf-token': csrf, 'x-requested-with': 'bench', 'content-type': 'text/csv' }, body });
        const { location } = (await res.json()) as { location: string };
        // The page's own stream says when it ended.
        const events = await fetch(`${admin.url}/events/imports/${location.split('/').pop()}`, { headers: { cookie } });
        const reader = events.body!.getReader();
        let seen = '';
        for (let next = await reader.read(); !/"state":"(finished|stopped)"/.test(seen); next = await reader.read()) {
          if (next.done) throw new Error('the stream ended first');
          seen = (seen + new TextDecoder().decode(next.value)).slice(-2000);
        }
        await reader.cancel();
        const seconds = (performance.now() - started) / 1000;
        delay.disable();
        console.log(`import of ${rows} ${label} (${(body.length / 1024 / 1024).toFixed(1)} MB) through the upload: ${seconds.toFixed(1)} s (${Math.round(rows / seconds)} rows/s); event loop: wall-clock stall max ${(delay.max / 1e6).toFixed(0)} ms, p99 ${(delay.percentile(99) / 1e6).toFixed(0)} ms; CPU held between timer turns max ${hold.stop().toFixed(1)} ms`);
      }
      console.log(`\nload average after: ${loadAverage()}`);
    } finally {
      await admin.close();
    }
  } finally {
    await queue?.stop();
    await pool.end();
    await server.close();
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
