// Scenario 6, soak (--soak; --soak-minutes N to shorten it; not in CI): an hour of mixed traffic —
// a broadcast every minute and a steady trickle of send jobs — while a different fault hits every
// minute (5xx, resets and hangs, a 429 storm, a kill -9, pg_terminate_backend, a PostgreSQL
// restart). Every 30 s it samples the daemons' RSS, their connections (pg_stat_activity) and the
// table sizes. Memory and connections must stay flat; table growth is reported as it is: finished
// jobs are kept BQ_CLEANUP_DAYS (at least one day), so within an hour the cleaner deletes nothing.
import type { ChaosContext } from './lib/context.js';
import { CHAOS_TOKEN, startStandIn } from './lib/context.js';
import { Fleet } from './lib/daemons.js';
import { absorbFleet, emptyResult, type ScenarioResult } from './lib/report.js';
import { mb, pick, seededRandom, sleep, until } from './lib/util.js';
import { rssGrowthOk } from './telegram.js';

const FAULTS = ['none', '10 % 5xx', 'resets and hangs', '429 storm', 'kill -9', 'pg_terminate_backend', 'PostgreSQL restart'] as const;
const TABLES = ['broadcast_queue_jobs', 'broadcast_deliveries', 'broadcasts', 'broadcast_chat_pacing', 'broadcast_queue_daemons'];

interface Sample {
  minute: number;
  rss: (number | null)[];
  connections: number;
  sizes: Record<string, number>;
  jobs: number;
}

export async function soak(ctx: ChaosContext): Promise<ScenarioResult> {
  const result = emptyResult(`6. soak (${ctx.soakMinutes} min)`);
  const began = Date.now();
  const rate = 100;
  const recipients = 2_000;
  const random = seededRandom(ctx.seed ^ 0x50a4);
  const server = await ctx.embedded();
  const db = await server.createDatabase('chaos_soak');
  const { api, apiRoot } = await startStandIn({ rateLimit: rate, seed: ctx.seed });
  // The stand-in's own records would grow for an hour: count deliveries per chat here and clear them.
  const deliveries = new Map<number, number>();
  api.on('delivered', (d: { chatId: number | string }) => deliveries.set(Number(d.chatId), (deliveries.get(Number(d.chatId)) ?? 0) + 1));
  let hangs = 0;
  let resets = 0;
  api.on('call', (c: { fault?: string }) => {
    if (c.fault === 'hang') hangs++;
    if (c.fault === 'reset') resets++;
  });
  const fleet = new Fleet({ databaseUrl: db.url, apiRoot, token: CHAOS_TOKEN, rateLimit: rate, concurrency: 4, env: { BQ_CLEANUP_DAYS: '1' } }, ctx.logDir, 'soak');
  const daemons = [fleet.add('a'), fleet.add('b')];
  const samples: Sample[] = [];
  const faultCounts = new Map<string, number>();
  let running = true;
  let stopped = false;
  const sample = async (minute: number) => {
    const { rows } = await db.pool.query(`SELECT ${TABLES.map((t, i) => `pg_total_relation_size('${t}') AS s${i}`).join(', ')}, (SELECT count(*)::int FROM broadcast_queue_jobs) AS jobs`);
    const conns = await server.connections(db.name);
    samples.push({ minute, rss: fleet.rss(), connections: conns.daemons, sizes: Object.fromEntries(TABLES.map((t, i) => [t, Number(rows[0][`s${i}`])])), jobs: rows[0].jobs });
  };
  try {
    await fleet.startAll();
    let chatBase = 100_000_000;
    let sendSeq = 0;
    const trickle = (async () => {
      while (running) {
        await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, payload) VALUES ('send', $1)`, [{ chat_id: 90_000_000 + ++sendSeq, message: { text: 'chaos: soak send' } }]).catch(() => undefined);
        await sleep(200);
      }
    })();
    const sampler = (async () => {
      while (running) {
        await sample((Date.now() - began) / 60_000).catch(() => undefined);
        await sleep(30_000);
      }
    })();
    const end = began + ctx.soakMinutes * 60_000;
    for (let minute = 0; Date.now() < end; minute++) {
      const minuteEnds = Math.min(end, began + (minute + 1) * 60_000);
      await db.pool.query(
        `INSERT INTO broadcast_queue_jobs (job_type, payload)
         SELECT 'broadcast', jsonb_build_object('message', jsonb_build_object('text', 'chaos: soak'), 'chat_ids', jsonb_agg(g))
           FROM generate_series($1::int, $1::int + $2::int - 1) g`,
        [chatBase, recipients],
      ).catch(() => undefined);
      chatBase += recipients;
      const fault = FAULTS[minute % FAULTS.length]!;
      faultCounts.set(fault, (faultCounts.get(fault) ?? 0) + 1);
      ctx.say(`  minute ${minute + 1}: ${fault}`);
      await sleep(10_000);
      switch (fault) {
        case '10 % 5xx': api.setFaults({ errorRate: 0.1, errorStatus: 503 }); break;
        case 'resets and hangs': api.setFaults({ resetRate: 0.01, hangRate: 0.002 }); break;
        case '429 storm': api.setFaults({ storm: true }); await sleep(3_000); api.setFaults({ storm: false }); break;
        case 'kill -9': {
          const d = pick(random, daemons);
          await d.kill9();
          await d.start();
          break;
        }
        case 'pg_terminate_backend': await server.terminateDaemonConnections(db.name); break;
        case 'PostgreSQL restart': await server.restartQuick(); break;
      }
      await sleep(Math.max(0, minuteEnds - Date.now() - 5_000));
      api.setFaults({ errorRate: 0, resetRate: 0, hangRate: 0, storm: false });
      api.reset();
      await sleep(Math.max(0, minuteEnds - Date.now()));
    }
    running = false;
    await Promise.all([trickle, sampler]);
    const settled = await until(async () => ((await db.pool.query(`SELECT count(*)::int AS n FROM broadcast_queue_jobs WHERE status IN ('pending', 'processing')`)).rows[0].n === 0 ? true : null), 180_000, 'every job to finish after the soak', 1_000).catch((e: Error) => e);
    if (settled instanceof Error) result.failures.push(settled.message);
    await sample((Date.now() - began) / 60_000);

    const ledger = (await db.pool.query(`SELECT status, count(*)::int AS n FROM broadcast_deliveries GROUP BY status`)).rows as { status: string; n: number }[];
    const by = Object.fromEntries(ledger.map((r) => [r.status, r.n])) as Record<string, number>;
    const sentNotReceived = (await db.pool.query(`SELECT chat_id FROM broadcast_deliveries WHERE status = 'sent'`)).rows.filter((r) => !deliveries.get(r.chat_id)).length;
    const sends = (await db.pool.query(`SELECT status, last_error, payload->>'chat_id' AS chat FROM broadcast_queue_jobs WHERE job_type = 'send'`)).rows as { status: string; last_error: string | null; chat: string }[];
    const sendsOpen = sends.filter((s) => s.status === 'pending' || s.status === 'processing').length;
    const sendsLost = sends.filter((s) => s.status === 'completed' && !deliveries.get(Number(s.chat))).length;
    const sendUnknown = sends.filter((s) => s.status === 'failed' && /outcome unknown/.test(s.last_error ?? '')).length;
    const broadcastsNotDone = (await db.pool.query(`SELECT count(*)::int AS n FROM broadcast_queue_jobs WHERE job_type = 'broadcast' AND status <> 'completed'`)).rows[0].n as number;
    result.lost = (by.pending ?? 0) + (by.sending ?? 0) + sentNotReceived + sendsOpen + sendsLost + broadcastsNotDone;
    result.duplicates = [...deliveries.values()].filter((n) => n > 1).length;
    result.unknown = (by.unknown ?? 0) + sendUnknown;
    result.unknownNote = `kills, resets and hangs: by design (${hangs} hangs, ${resets} resets)`;
    if (result.lost) result.failures.push(`lost: ${(by.pending ?? 0) + (by.sending ?? 0)} ledger rows not final, ${sentNotReceived} sent but never received, ${sendsOpen} send jobs unfinished, ${sendsLost} completed but never received, ${broadcastsNotDone} broadcast jobs not completed`);
    if (result.duplicates) result.failures.push(`${result.duplicates} chats received a message twice`);

    // Flatness: after the first minute's warm-up, against the end.
    const warm = samples.find((s) => s.minute >= 1 && s.rss.every((v) => v !== null)) ?? samples[0]!;
    const last = [...samples].reverse().find((s) => s.rss.every((v) => v !== null)) ?? samples[samples.length - 1]!;
    warm.rss.forEach((start, i) => {
      const endRss = last.rss[i];
      if (start !== null && endRss !== null && endRss !== undefined && !rssGrowthOk(start, endRss)) result.failures.push(`${fleet.slots[i]!.name} RSS grew from ${start} MB to ${endRss} MB`);
    });
    const maxConn = Math.max(...samples.map((s) => s.connections));
    // Per daemon: the pool (concurrency + 4), the listener and the liveness connection.
    const connLimit = daemons.length * (4 + 4 + 2);
    if (maxConn > connLimit) result.failures.push(`daemon connections reached ${maxConn} (bound ${connLimit})`);
    result.faults = `${ctx.soakMinutes} min: ${[...faultCounts].map(([f, n]) => `${f} × ${n}`).join(', ')}; a ${recipients}-recipient broadcast a minute + 5 sends/s`;
    result.notes.push(`RSS (MB) after warm-up → end: ${warm.rss.map((v, i) => `${v} → ${last.rss[i]}`).join(', ')}; max ${Math.max(0, ...samples.flatMap((s) => s.rss.filter((v): v is number => v !== null)))}`);
    result.notes.push(`daemon connections (pg_stat_activity): ${samples.map((s) => s.connections).join(' ')} (max ${maxConn}, bound ${connLimit})`);
    result.notes.push(`table sizes (MB) start → end: ${TABLES.map((t) => `${t} ${mb(samples[0]!.sizes[t]!)} → ${mb(last.sizes[t]!)}`).join(', ')}; job rows ${samples[0]!.jobs} → ${last.jobs}. Finished jobs stay BQ_CLEANUP_DAYS (minimum 1 day), so no cleanup happens within the soak: the jobs table and the ledger grow with the traffic (about ${Math.round((last.jobs - samples[0]!.jobs) / Math.max(1, ctx.soakMinutes))} job rows a minute here)`);
    result.notes.push(`ledger: ${Object.entries(by).map(([k, v]) => `${k} ${v}`).join(', ')}; sends: ${sends.length} (${sendUnknown} unknown)`);
    const rss = fleet.rss();
    await fleet.stopAll();
    stopped = true;
    absorbFleet(result, fleet, rss);
  } finally {
    running = false;
    if (!stopped) await fleet.killAll();
    await api.stop();
    await db.drop();
    result.durationMs = Date.now() - began;
  }
  return result;
}
