// `node dist/bench/wake-breakdown.js [inserts]`: where a wake-up's time goes, insert to handler,
// for our queue alone. A producer process inserts single jobs 10–20 ms apart; the daemon process
// stamps when the notification arrives, when the claim leaves and returns, and when the handler
// starts, all on CLOCK_MONOTONIC (process.hrtime), which both processes share. Needs DATABASE_URL
// (a server of your choice: durability changes what each commit costs).
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const mono = () => Number(process.hrtime.bigint()) / 1e6;
type Stamp = ['notification' | 'claim' | 'handler', number, number?, number?];

async function daemon(url: string): Promise<void> {
  const { BroadcastQueue } = await import('../src/broadcast-queue.js');
  const { Claimer } = await import('../src/queue/claimer.js');
  const { Listener } = await import('../src/queue/listener.js');
  const stamps: Stamp[] = [];
  const claim = Claimer.prototype.claim;
  Claimer.prototype.claim = async function (this: InstanceType<typeof Claimer>, limit: number) {
    const sent = mono();
    const jobs = await claim.call(this, limit);
    if (jobs.length) stamps.push(['claim', sent, mono()]);
    return jobs;
  };
  const emit = Listener.prototype.emit;
  Listener.prototype.emit = function (this: InstanceType<typeof Listener>, name: string | symbol, ...args: unknown[]) {
    if (name === 'notification' || name === 'assigned') stamps.push(['notification', mono()]);
    return emit.call(this, name, ...args);
  };
  const queue = new BroadcastQueue({ connectionString: url, concurrency: 2, handlers: { noop: (job) => void stamps.push(['handler', mono(), job.payload.seq as number]) } });
  await queue.start();
  process.send!('ready');
  process.once('message', async () => {
    process.send!(stamps);
    await queue.stop();
    process.exit(0);
  });
}

async function producer(): Promise<void> {
  const base = process.env.DATABASE_URL;
  if (!base) throw new Error('set DATABASE_URL to the server to measure on');
  const inserts = Number(process.argv[2] ?? 300);
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  const name = `bench_wake_${process.pid}`;
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(base);
  url.pathname = `/${name}`;
  const child = fork(fileURLToPath(import.meta.url), ['--daemon', url.toString()]);
  try {
    await new Promise((resolve) => child.once('message', resolve));
    const client = new pg.Client({ connectionString: url.toString() });
    await client.connect();
    const calls: [number, number][] = [];
    for (let seq = 0; seq < inserts; seq++) {
      const at = mono();
      await client.query(`INSERT INTO broadcast_queue_jobs (job_type, payload) VALUES ('noop', $1)`, [{ seq }]);
      calls.push([at, mono()]);
      await new Promise((resolve) => setTimeout(resolve, 10 + Math.random() * 10));
    }
    await client.end();
    await new Promise((resolve) => setTimeout(resolve, 200));
    child.send('report');
    const stamps = (await new Promise((resolve) => child.once('message', resolve))) as Stamp[];
    const after = (kind: Stamp[0], t: number) => stamps.find((s) => s[0] === kind && s[1] >= t);
    const phases: Record<string, number[]> = { 'insert returned': [], 'notification arrived': [], 'claim sent': [], 'claim returned': [], 'handler started': [] };
    calls.forEach(([at, returned], seq) => {
      const handler = stamps.find((s) => s[0] === 'handler' && s[2] === seq);
      const notification = after('notification', at);
      const claimed = after('claim', at);
      if (!handler) return;
      phases['insert returned']!.push(returned - at);
      phases['handler started']!.push(handler[1] - at);
      // A job the insert trigger handed to an idle slot (sql/0025) arrives claimed: no claim.
      if (claimed && claimed[1] < handler[1]) {
        phases['claim sent']!.push(claimed[1] - at);
        phases['claim returned']!.push(claimed[2]! - at);
      }
      if (notification) phases['notification arrived']!.push(notification[1] - at);
    });
    const pct = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.floor(p * (values.length - 1))]!.toFixed(2);
    console.log(`ms after the INSERT call, ${phases['handler started']!.length} of ${inserts} wake-ups`);
    for (const [phase, values] of Object.entries(phases)) if (values.length) console.log(`${phase.padEnd(22)} n ${String(values.length).padStart(4)} p50 ${pct(values, 0.5)}  p90 ${pct(values, 0.9)}`);
  } finally {
    child.kill();
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}

if (process.argv[2] === '--daemon') void daemon(process.argv[3]!);
else producer().catch((error) => {
  console.error(error);
  process.exit(1);
});
