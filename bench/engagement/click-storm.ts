// A click storm on the tracked-link redirect listener: 10,000 clicks on the links of one broadcast
// (5 links, 2,000 recipients), spread evenly over --seconds (60: "10,000 in a minute"), from
// --clients keep-alive connections. Prints the latency the clicker sees (request sent → 302
// received), the time inside the listener (request event → response written), the event loop's
// delay over the run (what the clicker and the listener both wait behind when the machine is busy),
// and how the clicks were written (statements, rows).
//
//   npx tsc -p tsconfig.json && nice -n 10 node dist/bench/engagement/click-storm.js [--clicks 10000] [--seconds 60] [--clients 50]
import http from 'node:http';
import { parseArgs } from 'node:util';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { openServer } from '../db.js';
import { BroadcastQueue } from '../../src/broadcast-queue.js';
import { startRedirectServer } from '../../src/engagement/redirect-server.js';
import { LinkTokens } from '../../src/engagement/token.js';

const { values: args } = parseArgs({ options: { clicks: { type: 'string', default: '10000' }, seconds: { type: 'string', default: '60' }, clients: { type: 'string', default: '50' } } });
const SECRET = 'bench-link-secret-0123456789abcdefghij';

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function main(): Promise<void> {
  const server = await openServer();
  const name = await server.createDatabase('click_storm');
  const queue = new BroadcastQueue({ connectionString: server.urlFor(name), tracking: { publicUrl: 'https://t.example.com', linkSecret: SECRET } });
  const clicks = Number(args.clicks);
  const seconds = Number(args.seconds);
  try {
    await queue.start();
    const pool = await queue.db();
    const links = [1, 2, 3, 4, 5].map((i) => `https://shop.example.com/item/${i}`);
    const message = { text: links.map((_, i) => `link${i}`).join(' '), entities: links.map((url, i) => ({ type: 'text_link', offset: i * 6, length: 5, url })) };
    const { rows } = await pool.query(`INSERT INTO broadcasts (message, audience, track, status) VALUES ($1, '{}', true, 'completed') RETURNING broadcast_id`, [message]);
    const broadcastId = rows[0].broadcast_id as number;
    const tokens = new LinkTokens(SECRET);
    const paths = Array.from({ length: clicks }, (_, i) => `/r/${tokens.encode({ kind: 'link', broadcastId, chatId: 1_000_000 + (i % 2_000), index: i % links.length })}`);
    const handler = queue.redirectHandler();
    const inHandler: number[] = [];
    const listener = await startRedirectServer((req, res) => {
      const started = performance.now();
      res.on('finish', () => inHandler.push(performance.now() - started));
      handler(req, res);
    }, '127.0.0.1', 0);
    let statements = 0;
    pool.on('acquire', () => { statements++; });
    const agent = new http.Agent({ keepAlive: true, maxSockets: Number(args.clients) });
    const latencies: number[] = [];
    let non302 = 0;
    const errors = new Map<string, number>();
    // A failed request is counted, not retried, and does not end the run.
    const click = (path: string) => new Promise<void>((resolve) => {
      const started = performance.now();
      http.get({ host: '127.0.0.1', port: listener.port, path, agent }, (res) => {
        res.resume();
        res.on('end', () => {
          latencies.push(performance.now() - started);
          if (res.statusCode !== 302) non302++;
          resolve();
        });
      }).on('error', (error: NodeJS.ErrnoException) => {
        errors.set(error.code ?? error.message, (errors.get(error.code ?? error.message) ?? 0) + 1);
        resolve();
      });
    });
    console.log(`PostgreSQL ${server.version} (${server.origin}); ${clicks} clicks over ${seconds} s from up to ${args.clients} connections, Node ${process.version}`);
    const loopDelay = monitorEventLoopDelay({ resolution: 5 });
    loopDelay.enable();
    const begun = performance.now();
    const inFlight: Promise<void>[] = [];
    for (let i = 0; i < clicks; i++) {
      const due = begun + (i * seconds * 1000) / clicks;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      inFlight.push(click(paths[i]!));
    }
    await Promise.all(inFlight);
    const elapsed = (performance.now() - begun) / 1000;
    loopDelay.disable();
    await queue.flushUpdates();
    const written = (await pool.query('SELECT count(*)::int AS n FROM broadcast_engagement WHERE broadcast_id = $1', [broadcastId])).rows[0].n;
    const sorted = [...latencies].sort((a, b) => a - b);
    console.log(`${latencies.length} answered in ${elapsed.toFixed(1)} s (${non302} not 302, failed: ${errors.size ? JSON.stringify(Object.fromEntries(errors)) : 'none'}): p50 ${percentile(sorted, 50).toFixed(2)} ms, p99 ${percentile(sorted, 99).toFixed(2)} ms, max ${sorted[sorted.length - 1]!.toFixed(2)} ms`);
    const handled = [...inHandler].sort((a, b) => a - b);
    console.log(`in the listener: p50 ${percentile(handled, 50).toFixed(3)} ms, p99 ${percentile(handled, 99).toFixed(3)} ms, max ${handled[handled.length - 1]!.toFixed(2)} ms; event loop delay (5 ms resolution): p99 ${(loopDelay.percentile(99) / 1e6).toFixed(1)} ms, max ${(loopDelay.max / 1e6).toFixed(1)} ms`);
    console.log(`clicks written: ${written} rows in ${statements} statements`);
    agent.destroy();
    await listener.close();
  } finally {
    await queue.stop();
    await server.close();
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
