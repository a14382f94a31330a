// Scenario 5, load: a bulk enqueue of a million 'send' jobs in one INSERT (low priority, a
// backlog), two broadcasts running, and a hundred clients inserting 'send' jobs of their own. The
// clients' jobs must start quickly (p99 of started_at − created_at, from the job rows), and nothing
// may be lost or sent twice.
import path from 'node:path';
import pg from 'pg';
import type { ChaosContext } from './lib/context.js';
import { CHAOS_TOKEN, deliveriesByChat, startStandIn } from './lib/context.js';
import { Fleet } from './lib/daemons.js';
import { absorbFleet, dumpDatabase, emptyResult, type ScenarioResult } from './lib/report.js';
import { between, fmtMs, percentile, seededRandom, sleep, until } from './lib/util.js';

const BULK_CHAT_BASE = 10_000_000;
const CLIENT_CHAT_BASE = 30_000_000;
/** The p99 start latency of the clients' send jobs above which the scenario fails. */
const P99_LIMIT_MS = 2_000;

export async function load(ctx: ChaosContext): Promise<ScenarioResult> {
  const result = emptyResult('5. load');
  const began = Date.now();
  const bulk = ctx.quick ? 200_000 : 1_000_000;
  const clients = ctx.quick ? 20 : 100;
  const clientSeconds = ctx.quick ? 40 : 90;
  const recipients = ctx.quick ? 3_000 : 10_000;
  const rate = 1000;
  const random = seededRandom(ctx.seed ^ 0x10ad);
  const server = await ctx.server();
  const db = await server.createDatabase('chaos_load');
  const { api, apiRoot } = await startStandIn({ rateLimit: rate });
  const fleet = new Fleet({ databaseUrl: db.url, apiRoot, token: CHAOS_TOKEN, rateLimit: rate, concurrency: 8 }, ctx.logDir, 'load');
  fleet.add('a');
  fleet.add('b');
  let stopped = false;
  const connections: pg.Client[] = [];
  try {
    await fleet.startAll();
    const broadcastJobs: number[] = [];
    for (let b = 0; b < 2; b++) {
      const { rows } = await db.pool.query(
        `INSERT INTO broadcast_queue_jobs (job_type, payload)
         SELECT 'broadcast', jsonb_build_object('message', jsonb_build_object('text', 'chaos: load'), 'chat_ids', jsonb_agg(g))
           FROM generate_series($1::int, $1::int + $2::int - 1) g RETURNING job_id`,
        [1 + b * recipients, recipients],
      );
      broadcastJobs.push(rows[0].job_id);
    }
    const t0 = Date.now();
    await db.pool.query(
      `INSERT INTO broadcast_queue_jobs (job_type, priority, payload)
       SELECT 'send', -10, jsonb_build_object('chat_id', $1::bigint + g, 'message', jsonb_build_object('text', 'chaos: bulk'))
         FROM generate_series(1, $2::int) g`,
      [BULK_CHAT_BASE, bulk],
    );
    const bulkMs = Date.now() - t0;
    ctx.say(`  ${bulk.toLocaleString('en')} send jobs enqueued in one statement in ${fmtMs(bulkMs)}; ${clients} clients for ${clientSeconds} s`);

    // The clients: each its own connection, inserting one send job at a time.
    let seq = 0;
    const clientJobs: { jobId: number; chatId: number }[] = [];
    let insertErrors = 0;
    const deadline = Date.now() + clientSeconds * 1000;
    for (let i = 0; i < clients; i++) {
      const c = new pg.Client({ connectionString: db.url, application_name: 'bq-chaos-client' });
      c.on('error', () => undefined);
      await c.connect();
      connections.push(c);
    }
    await Promise.all(connections.map(async (c) => {
      while (Date.now() < deadline) {
        const chatId = CLIENT_CHAT_BASE + ++seq;
        try {
          const { rows } = await c.query(`INSERT INTO broadcast_queue_jobs (job_type, payload) VALUES ('send', $1) RETURNING job_id`, [{ chat_id: chatId, message: { text: 'chaos: client' } }]);
          clientJobs.push({ jobId: rows[0].job_id, chatId });
        } catch {
          insertErrors++;
        }
        await sleep(between(random, 100, 500));
      }
    }));
    await Promise.all(connections.splice(0).map((c) => c.end().catch(() => undefined)));
    ctx.say(`  ${clientJobs.length} client send jobs inserted; waiting for them and the broadcasts`);

    const done = await until(async () => {
      const { rows } = await db.pool.query(
        `SELECT count(*) FILTER (WHERE status IN ('pending', 'processing') AND priority = 0)::int AS open FROM broadcast_queue_jobs`,
      );
      return rows[0].open === 0 ? true : null;
    }, 240_000, 'the client jobs and broadcasts to finish', 500).catch((e: Error) => e);
    if (done instanceof Error) result.failures.push(done.message);
    // The backlog would take a quarter of an hour at 1000/s: cancel what is left, as an operator would.
    const t1 = Date.now();
    const cancelled = (await db.pool.query(`UPDATE broadcast_queue_jobs SET status = 'cancelled', finished_at = now(), updated_at = now() WHERE status = 'pending' AND priority = -10`)).rowCount ?? 0;
    const cancelMs = Date.now() - t1;
    await until(async () => ((await db.pool.query(`SELECT count(*)::int AS n FROM broadcast_queue_jobs WHERE status = 'processing'`)).rows[0].n === 0 ? true : null), 60_000, 'nothing processing').catch((e: Error) => result.failures.push(e.message));

    // Verdicts.
    await api.sync();
    const delivered = deliveriesByChat(api);
    const jobs = new Map(((await db.pool.query(`SELECT job_id, status, last_error, created_at, started_at FROM broadcast_queue_jobs WHERE priority = 0`)).rows as { job_id: number; status: string; last_error: string | null; created_at: Date; started_at: Date | null }[]).map((j) => [j.job_id, j]));
    const clientNotDone = clientJobs.filter((c) => jobs.get(c.jobId)?.status !== 'completed');
    const clientNotReceived = clientJobs.filter((c) => jobs.get(c.jobId)?.status === 'completed' && !delivered.get(c.chatId));
    const latencies = clientJobs.map((c) => jobs.get(c.jobId)).filter((j) => j?.started_at).map((j) => j!.started_at!.getTime() - j!.created_at.getTime());
    const p99 = percentile(latencies, 99);
    const bulkRows = (await db.pool.query(`SELECT status, count(*)::int AS n FROM broadcast_queue_jobs WHERE priority = -10 GROUP BY status`)).rows as { status: string; n: number }[];
    const bulkBy = Object.fromEntries(bulkRows.map((r) => [r.status, r.n])) as Record<string, number>;
    const bulkTotal = bulkRows.reduce((n, r) => n + r.n, 0);
    let bulkDelivered = 0;
    for (const [chat, n] of delivered) if (chat > BULK_CHAT_BASE && chat <= BULK_CHAT_BASE + bulk) bulkDelivered += n;
    const bulkUnknown = (await db.pool.query(`SELECT count(*)::int AS n FROM broadcast_queue_jobs WHERE priority = -10 AND status = 'failed' AND last_error LIKE 'outcome unknown%'`)).rows[0].n as number;
    const broadcasts = (await db.pool.query(`SELECT job_id, status, result FROM broadcast_queue_jobs WHERE job_id = ANY($1)`, [broadcastJobs])).rows;
    const ledgerOpen = (await db.pool.query(`SELECT count(*)::int AS n FROM broadcast_deliveries WHERE status NOT IN ('sent', 'failed', 'skipped', 'unknown')`)).rows[0].n as number;

    result.lost = clientNotDone.length + clientNotReceived.length + (bulk - bulkTotal) + ledgerOpen + broadcasts.filter((b) => b.status !== 'completed').length + (bulkBy.pending ?? 0) + (bulkBy.processing ?? 0);
    result.duplicates = [...delivered.values()].filter((n) => n > 1).length;
    result.unknown = bulkUnknown;
    if (clientNotDone.length) result.failures.push(`${clientNotDone.length} client send jobs did not complete (e.g. job ${clientNotDone[0]!.jobId}: ${jobs.get(clientNotDone[0]!.jobId)?.status} ${jobs.get(clientNotDone[0]!.jobId)?.last_error ?? ''})`);
    if (clientNotReceived.length) result.failures.push(`${clientNotReceived.length} client send jobs completed but were never received`);
    if (bulkTotal !== bulk) result.failures.push(`the bulk insert wrote ${bulk} rows but ${bulkTotal} are left`);
    if ((bulkBy.completed ?? 0) !== bulkDelivered) result.failures.push(`${bulkBy.completed ?? 0} bulk jobs completed but the stand-in received ${bulkDelivered} bulk messages`);
    if (ledgerOpen) result.failures.push(`${ledgerOpen} ledger rows not final`);
    for (const b of broadcasts) if (b.status !== 'completed') result.failures.push(`broadcast job ${b.job_id} ended ${b.status}`);
    if (result.duplicates) result.failures.push(`${result.duplicates} chats received a message twice`);
    if (p99 !== null && p99 > P99_LIMIT_MS) result.failures.push(`p99 insert-to-start latency of the clients' send jobs is ${fmtMs(p99)} (limit ${fmtMs(P99_LIMIT_MS)})`);
    const busiest = api.maxCallsInWindow(1000);
    if (busiest > rate) result.failures.push(`rate limit broken: ${busiest} calls in one second (limit ${rate})`);

    result.faults = `${bulk.toLocaleString('en')}-row INSERT (${fmtMs(bulkMs)}), ${clients} inserting clients × ${clientSeconds} s (${clientJobs.length} jobs), 2 × ${recipients.toLocaleString('en')}-recipient broadcasts`;
    result.unknownNote = 'no fault injected';
    result.notes.push(`client send jobs: start latency p50 ${fmtMs(percentile(latencies, 50))}, p95 ${fmtMs(percentile(latencies, 95))}, **p99 ${fmtMs(p99)}**, max ${fmtMs(latencies.length ? Math.max(...latencies) : null)} over ${latencies.length} jobs; ${insertErrors} client inserts failed`);
    result.notes.push(`bulk backlog: ${bulkBy.completed ?? 0} sent meanwhile, ${cancelled} cancelled afterwards in one UPDATE (${fmtMs(cancelMs)}), ${bulkBy.failed ?? 0} failed`);
    result.notes.push(`broadcasts: ${broadcasts.map((b) => `${b.status} ${JSON.stringify(b.result)}`).join('; ')}`);
    result.notes.push(`stand-in: ${api.calls.length} calls, busiest second ${busiest} (limit ${rate}), ${api.tooManyRequests} × 429`);
    if (result.failures.length) await dumpDatabase(db.pool, path.join(ctx.logDir, `${db.name}.json`)).catch(() => undefined);
    const rss = fleet.rss();
    await fleet.stopAll();
    stopped = true;
    absorbFleet(result, fleet, rss);
  } finally {
    await Promise.all(connections.map((c) => c.end().catch(() => undefined)));
    if (!stopped) await fleet.killAll();
    await api.stop();
    await db.drop();
    result.durationMs = Date.now() - began;
  }
  return result;
}
