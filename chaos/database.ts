// Scenario 2, the database goes away: the embedded PostgreSQL is restarted (a crash-like quick
// restart, and a clean stop with 10 s away) during a broadcast and while idle, and every daemon
// connection is killed with pg_terminate_backend. The daemons must reconnect (each logs 'listener
// connected' again), jobs inserted right after the restart and after the reconnect must run,
// nothing may be lost or sent twice, and no daemon may crash.
//
// The sweep is 10 s here (not the 0.5 s of the other scenarios), so a job that starts within 2 s
// of its insert was woken by NOTIFY: that proves LISTEN resumed, not merely that the sweep ran.
import type { ChaosContext } from './lib/context.js';
import { CHAOS_TOKEN, deliveriesByChat, startStandIn } from './lib/context.js';
import { Fleet } from './lib/daemons.js';
import { watchActivity } from './lib/cluster.js';
import { writeFile } from 'node:fs/promises';
import { absorbFleet, dumpDatabase, emptyResult, type ScenarioResult } from './lib/report.js';
import path from 'node:path';
import { createPool } from '../src/db/pool.js';
import { silentLogger } from '../src/log.js';
import { eventually, fmtMs, percentile, sleep, until } from './lib/util.js';

const SEND_CHAT_BASE = 2_000_000;
const NOTIFY_LATENCY_MS = 2_000;

interface Inserted {
  jobId: number;
  chatId: number;
  phase: string;
}

export async function databaseGoesAway(ctx: ChaosContext): Promise<ScenarioResult> {
  const result = emptyResult('2. database goes away');
  const began = Date.now();
  const rate = 300;
  const recipients = ctx.quick ? 4_000 : 12_000;
  const server = await ctx.embedded();
  const db = await server.createDatabase('chaos_database');
  const { api, apiRoot } = await startStandIn({ rateLimit: rate });
  const fleet = new Fleet(
    { databaseUrl: db.url, apiRoot, token: CHAOS_TOKEN, rateLimit: rate, concurrency: 4, env: { BQ_SWEEP_SECONDS: '10', BQ_RESCUE_AFTER_SECONDS: '30', BQ_HEARTBEAT_SECONDS: '2' } },
    ctx.logDir,
    'database',
  );
  fleet.add('a');
  fleet.add('b');
  // The inserting application: its own pool, one send job every 250 ms, retried while the database is away.
  const appPool = createPool({ connectionString: db.url, max: 2, applicationName: 'bq-chaos-app', log: silentLogger() });
  const inserted: Inserted[] = [];
  let phase = 'start';
  let chatSeq = 0;
  let refusedWhileAway = 0;
  let inserting = true;
  // Inserts that failed. Some may have landed: an immediate shutdown right after the commit loses
  // only the answer. Such a chat id is never reused (two jobs for one chat would count as a
  // message sent twice), and the jobs that did land are found by chat id and judged with the rest.
  const unanswered: { chatId: number; phase: string }[] = [];
  const insertOne = async (label: string): Promise<boolean> => {
    const chatId = SEND_CHAT_BASE + ++chatSeq;
    try {
      const { rows } = await appPool.query(`INSERT INTO broadcast_queue_jobs (job_type, payload) VALUES ('send', $1) RETURNING job_id`, [{ chat_id: chatId, message: { text: `chaos: database ${label}` } }]);
      inserted.push({ jobId: rows[0].job_id, chatId, phase: label });
      return true;
    } catch {
      unanswered.push({ chatId, phase: label });
      return false;
    }
  };
  const inserter = (async () => {
    while (inserting) {
      if (!(await insertOne(phase))) refusedWhileAway++;
      await sleep(250);
    }
  })();

  const disruptions: { label: string; downMs: number; reconnectMs: (number | null)[] }[] = [];
  /** Runs one disruption, inserts jobs the moment PostgreSQL is back, and waits for every listener. */
  const disrupt = async (label: string, action: () => Promise<number>) => {
    phase = `${label}: during`;
    const from = Date.now();
    const reconnected = fleet.slots.map((s) => s.waitForLine((l) => l.msg === 'listener connected', 90_000).then(() => Date.now(), () => null));
    const downMs = await action();
    // Inserted before the daemons can have reconnected: their NOTIFY is lost, so only the claim on
    // reconnect (or the sweep) can start them.
    phase = `${label}: right after`;
    for (let i = 0; i < 3; i++) await insertOne(phase);
    const back = await Promise.all(reconnected);
    const reconnectMs = back.map((t) => (t === null ? null : Math.max(0, t - from - downMs)));
    disruptions.push({ label, downMs, reconnectMs });
    back.forEach((t, i) => {
      if (t === null) result.failures.push(`${fleet.slots[i]!.name} did not log 'listener connected' within 90 s after ${label}`);
    });
    ctx.say(`  ${label}: down ${fmtMs(downMs)}, listeners back after ${reconnectMs.map(fmtMs).join(' / ')}`);
    phase = `${label}: after reconnect`;
    for (let i = 0; i < 3; i++) await insertOne(phase);
    // The next disruption waits until these have started, or until they are late enough to fail
    // the check anyway: under --stress a claim can take over a second, and one cut by the next
    // outage waited that outage out, which is the outage's doing, not a lost wake (daemon logs:
    // the notification arrived; 'claim failed … administrator command' as the outage began).
    const ids = inserted.filter((i) => i.phase === phase).map((i) => i.jobId);
    await eventually(async () => (await db.pool.query(`SELECT count(*)::int AS n FROM broadcast_queue_jobs WHERE job_id = ANY($1) AND started_at IS NOT NULL`, [ids])).rows[0].n === ids.length, NOTIFY_LATENCY_MS + 500, 50);
    // The background inserter goes on until the next disruption; its jobs are not judged as
    // 'after reconnect': one inserted as the next outage begins waits that outage out. That was
    // the '10.9 s after a quick restart while idle' finding: the jobs were claimed, the claim was
    // cut by the next 10 s outage (daemon logs: 'claim failed … administrator command').
    phase = `${label}: until the next disruption`;
  };
  const sentSoFar = async () => (await db.pool.query(`SELECT count(*) FILTER (WHERE status = 'sent')::int AS n FROM broadcast_deliveries`).catch(() => ({ rows: [{ n: 0 }] }))).rows[0].n as number;

  let stopped = false;
  const stopWatching = watchActivity(server, db.name);
  try {
    await fleet.startAll();
    const { rows } = await db.pool.query(
      `INSERT INTO broadcast_queue_jobs (job_type, payload)
       SELECT 'broadcast', jsonb_build_object('message', jsonb_build_object('text', 'chaos: database'), 'chat_ids', jsonb_agg(g))
         FROM generate_series(1, $1::int) g RETURNING job_id`,
      [recipients],
    );
    const broadcastJobId = rows[0].job_id as number;
    ctx.say(`  broadcast job ${broadcastJobId}: ${recipients} recipients at ${rate}/s`);

    await until(async () => (await sentSoFar()) >= recipients * 0.15, 60_000, 'the broadcast to get going');
    await disrupt('quick restart during a broadcast', () => server.restartQuick());
    await until(async () => (await sentSoFar()) >= recipients * 0.4, 90_000, 'the broadcast to resume after the quick restart').catch((e: Error) => result.failures.push(e.message));
    await disrupt('10 s outage during a broadcast', () => server.outage(10_000));
    await until(async () => (await sentSoFar()) >= recipients * 0.6, 90_000, 'the broadcast to resume after the outage').catch((e: Error) => result.failures.push(e.message));
    let terminated = 0;
    await disrupt('pg_terminate_backend during a broadcast', async () => {
      terminated += await server.terminateDaemonConnections(db.name);
      return 0;
    });
    await until(async () => {
      const r = (await db.pool.query('SELECT status FROM broadcast_queue_jobs WHERE job_id = $1', [broadcastJobId])).rows[0];
      return r.status === 'completed' || r.status === 'failed' ? r : null;
    }, 180_000, 'the broadcast job to finish').catch((e: Error) => result.failures.push(e.message));

    await sleep(1_000);
    await disrupt('quick restart while idle', () => server.restartQuick());
    await sleep(1_000);
    await disrupt('10 s outage while idle', () => server.outage(10_000));
    await sleep(1_000);
    await disrupt('pg_terminate_backend while idle', async () => {
      terminated += await server.terminateDaemonConnections(db.name);
      return 0;
    });
    await sleep(1_000);
    inserting = false;
    await inserter;

    const finished = await until(async () => {
      const r = await db.pool.query(`SELECT count(*) FILTER (WHERE status IN ('pending', 'processing'))::int AS open FROM broadcast_queue_jobs`);
      return r.rows[0].open === 0 ? true : null;
    }, 120_000, 'every job to finish').catch((e: Error) => e);
    if (finished instanceof Error) result.failures.push(finished.message);

    // Verdicts.
    const landed = (await db.pool.query(
      `SELECT job_id, (payload ->> 'chat_id')::bigint AS chat_id FROM broadcast_queue_jobs WHERE job_type = 'send' AND (payload ->> 'chat_id')::bigint = ANY($1::bigint[])`,
      [unanswered.map((u) => u.chatId)],
    )).rows as { job_id: number; chat_id: number }[];
    for (const l of landed) inserted.push({ jobId: l.job_id, chatId: l.chat_id, phase: `${unanswered.find((u) => u.chatId === l.chat_id)!.phase} (insert answered with an error, but landed)` });
    await api.sync();
    const delivered = deliveriesByChat(api);
    const jobs = new Map(((await db.pool.query(`SELECT job_id, status, attempts, last_error, created_at, started_at FROM broadcast_queue_jobs`)).rows as { job_id: number; status: string; attempts: number; last_error: string | null; created_at: Date; started_at: Date | null }[]).map((j) => [j.job_id, j]));
    const broadcast = jobs.get(broadcastJobId)!;
    if (broadcast.status !== 'completed') result.failures.push(`the broadcast job ended ${broadcast.status} after ${broadcast.attempts} attempts: ${broadcast.last_error}`);
    const ledger = (await db.pool.query(`SELECT chat_id, status FROM broadcast_deliveries`)).rows as { chat_id: number; status: string }[];
    const open = ledger.filter((l) => l.status === 'pending' || l.status === 'sending');
    const sentNotReceived = ledger.filter((l) => l.status === 'sent' && !delivered.get(l.chat_id));
    const ledgerUnknown = ledger.filter((l) => l.status === 'unknown').length;
    const notCompleted = inserted.filter((i) => jobs.get(i.jobId)?.status !== 'completed');
    const completedNotReceived = inserted.filter((i) => jobs.get(i.jobId)?.status === 'completed' && !delivered.get(i.chatId));
    const vanished = inserted.filter((i) => !jobs.has(i.jobId));
    result.lost = open.length + sentNotReceived.length + (recipients - ledger.length) + notCompleted.filter((i) => jobs.get(i.jobId)?.status !== 'failed').length + completedNotReceived.length + vanished.length;
    result.duplicates = [...delivered.values()].filter((n) => n > 1).length;
    const sendUnknown = inserted.filter((i) => /outcome unknown/.test(jobs.get(i.jobId)?.last_error ?? '') && jobs.get(i.jobId)?.status === 'failed').length;
    result.unknown = ledgerUnknown + sendUnknown;
    result.unknownNote = 'no daemon died: expected 0';
    if (open.length || ledger.length !== recipients) result.failures.push(`ledger: ${open.length} rows not final, ${recipients - ledger.length} missing`);
    if (sentNotReceived.length) result.failures.push(`${sentNotReceived.length} ledger rows say sent but were never received`);
    if (vanished.length) result.failures.push(`${vanished.length} inserted jobs vanished`);
    for (const i of notCompleted.slice(0, 5)) {
      const j = jobs.get(i.jobId);
      result.failures.push(`send job ${i.jobId} (inserted ${i.phase}) ended ${j?.status} after ${j?.attempts} attempts: ${j?.last_error}`);
    }
    if (notCompleted.length > 5) result.failures.push(`… and ${notCompleted.length - 5} more send jobs not completed`);
    if (completedNotReceived.length) result.failures.push(`${completedNotReceived.length} send jobs completed but never received`);
    if (result.duplicates) result.failures.push(`${result.duplicates} chats received a message twice`);
    if (result.unknown) result.failures.push(`${result.unknown} unknown outcomes (${ledgerUnknown} ledger rows, ${sendUnknown} send jobs) although no daemon died: a live daemon's work was treated as interrupted`);

    // Latency by phase: after the reconnect it must be NOTIFY-fast; right after the restart the
    // claim on reconnect must start them.
    const latency = (label: string) => inserted.filter((i) => i.phase === label).map((i) => {
      const j = jobs.get(i.jobId);
      return j?.started_at ? j.started_at.getTime() - j.created_at.getTime() : null;
    }).filter((v): v is number => v !== null);
    for (const d of disruptions) {
      const after = latency(`${d.label}: after reconnect`);
      const right = latency(`${d.label}: right after`);
      const worstAfter = Math.max(0, ...after);
      if (worstAfter > NOTIFY_LATENCY_MS) result.failures.push(`after ${d.label}, a job inserted after the listener reconnected waited ${fmtMs(worstAfter)} to start (sweep is 10 s; NOTIFY should take ms): LISTEN did not resume`);
      result.notes.push(`${d.label}: down ${fmtMs(d.downMs)}; listeners back after ${d.reconnectMs.map(fmtMs).join(' / ')}; jobs inserted right after the restart started after ${right.map(fmtMs).join(', ') || 'n/a'}; after the reconnect: max ${fmtMs(worstAfter)}`);
    }
    const all = inserted.map((i) => jobs.get(i.jobId)).filter((j) => j?.started_at).map((j) => j!.started_at!.getTime() - j!.created_at.getTime());
    result.notes.push(`${inserted.length} send jobs inserted (${refusedWhileAway} inserts refused while the database was away, retried; ${landed.length} inserts answered with an error had landed); start latency p50 ${fmtMs(percentile(all, 50))}, p99 ${fmtMs(percentile(all, 99))}, max ${fmtMs(Math.max(0, ...all))}`);
    result.notes.push(`broadcast: ${broadcast.status} after ${broadcast.attempts} attempt(s); ${terminated} daemon connections terminated in total`);
    result.notes.push(`daemon log: ${fleet.messageCount('claim failed')} 'claim failed', ${fleet.messageCount('job will be retried')} 'job will be retried', ${fleet.messageCount('writing delivery outcomes failed; retrying')} delayed ledger writes, ${fleet.messageCount('writing job outcomes failed; retrying')} delayed job writes, ${fleet.messageCount('this daemon was declared dead and its jobs were handed back; aborting them')} 'declared dead'`);
    result.faults = `3 × during a ${recipients.toLocaleString('en')}-recipient broadcast + 3 × idle: quick restart (immediate shutdown), 10 s outage, pg_terminate_backend (${terminated} connections)`;

    if (result.duplicates) {
      const twice = [...delivered].filter(([, n]) => n > 1).map(([chat]) => chat);
      const calls = api.calls.filter((c) => twice.slice(0, 5).includes(Number(c.chatId))).map((c) => `${c.chatId}@${Math.round(c.at)}ms:${c.status}`);
      result.notes.push(`chats received twice: ${twice.slice(0, 20).join(', ')}${twice.length > 20 ? ' …' : ''}; their calls (chat@stand-in ms:status): ${calls.join(' ')}`);
    }
    const stuck = await stopWatching();
    if (stuck.length) {
      await writeFile(path.join(ctx.logDir, `${db.name}-activity.log`), `${stuck.join('\n')}\n`);
      result.notes.push(`${stuck.length} daemon sessions seen waiting on a lock, idle in a transaction or running > 3 s (logs/${db.name}-activity.log), e.g. ${stuck.slice(0, 3).join(' | ')}`);
    }
    if (result.failures.length) await dumpDatabase(db.pool, path.join(ctx.logDir, `${db.name}.json`));
    const rss = fleet.rss();
    await fleet.stopAll();
    stopped = true;
    absorbFleet(result, fleet, rss);
  } finally {
    await stopWatching();
    inserting = false;
    await inserter.catch(() => undefined);
    if (!stopped) await fleet.killAll();
    await appPool.end().catch(() => undefined);
    await api.stop();
    await db.drop();
    result.durationMs = Date.now() - began;
  }
  return result;
}
