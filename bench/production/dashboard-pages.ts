// What each dashboard page costs on a big table: 2,000,000 finished jobs (1,800,000 completed,
// 200,000 failed, finished over the last 7 days) and a tracked broadcast whose 1,000,000 ledger
// rows were sent over the last 24 hours (100,000 clicks), loaded as status-cost.ts loads them, and
// as many subscribers as ledger rows. A BroadcastQueue (no bot, so
// it claims nothing) serves the dashboard through startAdminServer; each page is fetched --runs
// times over loopback after a login, and the time to the last byte is reported (median, p90, max):
// the server's time plus a loopback round trip. Issue 15 asks for every page under 200 ms.
//
//   npx tsc -p tsconfig.json && nice -n 10 node dist/bench/production/dashboard-pages.js [--completed 1800000]
//     [--failed 200000] [--ledger 1000000] [--runs 20]
//
// DATABASE_URL: a server where it may create a database; without it an embedded PostgreSQL is
// started. The machine is shared: figures move with its load.
import os from 'node:os';
import { parseArgs } from 'node:util';
import { openServer } from '../db.js';
import { migrate } from '../../src/db/migrate.js';
import { createPool } from '../../src/db/pool.js';
import { silentLogger } from '../../src/log.js';
import { BroadcastQueue } from '../../src/broadcast-queue.js';
import { startAdminServer } from '../../src/http/admin-server.js';
import { countAudience } from '../../src/broadcast/audience.js';

const { values: args } = parseArgs({
  options: {
    completed: { type: 'string', default: '1800000' },
    failed: { type: 'string', default: '200000' },
    ledger: { type: 'string', default: '1000000' },
    runs: { type: 'string', default: '20' },
  },
});
const TOKEN = 'bench-dashboard-token-0123456789';
const loadAverage = (): string => os.loadavg().map((l) => l.toFixed(1)).join(' / ');
const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;

async function main(): Promise<void> {
  const server = await openServer();
  const name = await server.createDatabase('dashboard_pages');
  const url = server.urlFor(name);
  const pool = createPool({ connectionString: url, max: 4, applicationName: 'bq-bench-dashboard', log: silentLogger() });
  let queue: BroadcastQueue | null = null;
  try {
    await migrate(pool, silentLogger());
    const generated = performance.now();
    await pool.query(`INSERT INTO broadcast_queue_jobs (job_type, status, attempts, created_at, started_at, finished_at, payload, result)
                      SELECT CASE WHEN g % 10 = 0 THEN 'broadcast' ELSE 'send' END, 'completed', 1 + (g % 20 = 0)::int,
                             now() - (g % 604800) * interval '1 second' - interval '2 seconds', now() - (g % 604800) * interval '1 second' - interval '1 second',
                             now() - (g % 604800) * interval '1 second', jsonb_build_object('chat_id', g, 'message', jsonb_build_object('text', 'Hello number ' || g)), '{"ok": true}'
                        FROM generate_series(1, $1::int) g`, [Number(args.completed)]);
    await pool.query(`INSERT INTO broadcast_queue_jobs (job_type, status, attempts, created_at, started_at, finished_at, payload, last_error)
                      SELECT 'send', 'failed', 3, now() - (g % 604800) * interval '1 second' - interval '2 seconds', now() - (g % 604800) * interval '1 second' - interval '1 second',
                             now() - (g % 604800) * interval '1 second', jsonb_build_object('chat_id', g, 'message', jsonb_build_object('text', 'Hi')),
                             'blocked: Forbidden: bot was blocked by the user'
                        FROM generate_series(1, $1::int) g`, [Number(args.failed)]);
    await pool.query(`INSERT INTO broadcast_queue_jobs (job_type) SELECT 'send' FROM generate_series(1, 500)`);
    const ledger = Number(args.ledger);
    // Tracked, with a link, so its page shows the engagement report over the whole ledger.
    const b = await pool.query(`INSERT INTO broadcasts (title, message, audience, status, total, sent, started_at, track) VALUES ('day', '{"text": "hi, see example.com", "entities": [{"type": "url", "offset": 9, "length": 11}]}', '{"tags_any": ["all"]}', 'sending', $1::int, $1::int, now() - interval '24 hours', true) RETURNING broadcast_id`, [ledger]);
    const broadcastId = b.rows[0].broadcast_id as number;
    await pool.query(`INSERT INTO broadcasts (title, message, audience, status, total, sent, finished_at) SELECT 'old ' || g, '{"text": "hi"}', '{"tags_any": ["all"]}', 'completed', 10, 10, now() - g * interval '1 hour' FROM generate_series(1, 200) g`);
    await pool.query(`INSERT INTO broadcast_deliveries (broadcast_id, chat_id, status, attempts, message_id, sent_at)
                      SELECT $2::bigint, g, 'sent', 1, g, now() - (g % 86000) * interval '1 second'
                        FROM generate_series(1, $1::int) g`, [ledger, broadcastId]);
    // A subscriber per ledger row (languages, tags), and one in ten of them clicked once.
    await pool.query(`INSERT INTO broadcast_subscribers (chat_id, language_code, tags)
                      SELECT g, (ARRAY['en', 'de', 'ru', 'uk', 'pt-br'])[1 + g % 5], CASE WHEN g % 3 = 0 THEN ARRAY['all', 'news'] ELSE ARRAY['all'] END
                        FROM generate_series(1, $1::int) g`, [ledger]);
    await pool.query(`INSERT INTO broadcast_engagement (broadcast_id, chat_id, kind, link_index, at)
                      SELECT $2::bigint, g, 'click', 0, now() - (g % 86000) * interval '1 second' FROM generate_series(1, $1::int, 10) g`, [ledger, broadcastId]);
    await pool.query(`INSERT INTO broadcast_messages_sent (minute, messages)
                      SELECT date_trunc('minute', sent_at), count(*) FROM broadcast_deliveries WHERE status = 'sent' GROUP BY 1`);
    await pool.query('SELECT broadcast_queue_roll_up_counts()');
    for (const table of ['broadcast_queue_jobs', 'broadcast_deliveries', 'broadcasts', 'broadcast_subscribers', 'broadcast_engagement']) await pool.query(`VACUUM ANALYZE ${table}`);
    const oneFailed = (await pool.query(`SELECT max(job_id) AS id FROM broadcast_queue_jobs WHERE status = 'failed'`)).rows[0].id;
    const middle = Math.floor(Number(args.completed) / 2);
    console.log(`PostgreSQL ${server.version} (${server.origin}); ${args.completed} completed + ${args.failed} failed kept, 500 pending, ${ledger} ledger rows in broadcast ${broadcastId}; generated in ${((performance.now() - generated) / 1000).toFixed(0)} s; load average ${loadAverage()} on ${os.availableParallelism()} cores`);

    // Cleaner and retention off: they would start deleting the generated week while it is measured.
    queue = new BroadcastQueue({ connectionString: url, cleanupDays: 0, ledgerRetentionDays: 0, log: silentLogger() });
    await queue.start();
    const admin = await startAdminServer(queue, { port: 0, apiToken: TOKEN, log: silentLogger() });
    try {
      const login = await fetch(`${admin.url}/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${TOKEN}` });
      const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
      // The Subscribers page counts on its first view and keeps the counts 60 s: time that view alone.
      const firstSubscribers = performance.now();
      const first = await fetch(`${admin.url}/subscribers`, { headers: { cookie } });
      await first.text();
      console.log(`subscribers page, first view (counts ${ledger} subscribers): ${(performance.now() - firstSubscribers).toFixed(0)} ms, status ${first.status}`);
      // Compose's live count with a frequency cap: what /compose/check runs for each edit.
      for (const cap of [null, 1]) {
        const counted = performance.now();
        await countAudience(pool, { tags_any: ['news'] }, 'audience', cap);
        console.log(`compose count, tags_any news (${Math.floor(ledger / 3)} chats), frequency cap ${cap ?? 'none'}: ${(performance.now() - counted).toFixed(0)} ms`);
      }
      const pages: Record<string, string> = {
        'overview': '/',
        'jobs, newest': '/jobs',
        'jobs, state failed': '/jobs?state=failed',
        'jobs, type broadcast': '/jobs?type=broadcast',
        'jobs, text in payload or error (no match: a whole window)': '/jobs?q=no-such-text-anywhere',
        'jobs, state failed + text': '/jobs?state=failed&q=blocked',
        'jobs, a time range': `/jobs?from=${new Date(Date.now() - 3 * 86400_000).toISOString().slice(0, 16)}&to=${new Date(Date.now() - 2 * 86400_000).toISOString().slice(0, 16)}`,
        'jobs, a page a million ids down': `/jobs?before=${middle}`,
        'one job': `/jobs/${oneFailed}`,
        'broadcasts': '/broadcasts',
        'one broadcast (1,000,000 ledger rows)': `/broadcasts/${broadcastId}`,
        'health': '/health',
        'compose': '/compose',
        'subscribers (counts kept)': '/subscribers',
      };
      const runs = Number(args.runs);
      console.log(`\n| page (${runs} runs each, in turn) | median | p90 | max | bytes |`);
      console.log('|---|---|---|---|---|');
      const samples: Record<string, number[]> = Object.fromEntries(Object.keys(pages).map((k) => [k, []]));
      const sizes: Record<string, number> = {};
      for (let i = 0; i < runs + 1; i++) {
        for (const [label, path] of Object.entries(pages)) {
          const started = performance.now();
          const res = await fetch(`${admin.url}${path}`, { headers: { cookie }, redirect: 'manual' });
          const body = await res.text();
          const ms = performance.now() - started;
          if (res.status !== 200) throw new Error(`${path} answered ${res.status}: ${body.slice(0, 300)}`);
          sizes[label] = body.length;
          if (i > 0) samples[label]!.push(ms); // the first round warms the caches and the pool
        }
      }
      for (const [label, t] of Object.entries(samples)) {
        t.sort((a, c) => a - c);
        console.log(`| ${label} | ${percentile(t, 0.5).toFixed(1)} ms | ${percentile(t, 0.9).toFixed(1)} ms | ${t[t.length - 1]!.toFixed(1)} ms | ${sizes[label]} |`);
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
