// Scenario 1, crashes: two daemons share a broadcast (and a trickle of 'send' jobs) while random
// kill -9s hit either of them, each restarted at once. At-most-once means: nobody receives the
// message twice, and the unknown outcomes are at most what was in flight at the kills (read from
// the ledger while the daemon is frozen, just before each kill). The broadcast completes and no
// job is left processing.
import type { ChaosContext } from './lib/context.js';
import { CHAOS_TOKEN, deliveriesByChat, startStandIn } from './lib/context.js';
import { backendsSettled } from './lib/backends.js';
import { Fleet, type DaemonSlot } from './lib/daemons.js';
import { absorbFleet, dumpDatabase, emptyResult, type ScenarioResult } from './lib/report.js';
import path from 'node:path';
import { between, pick, seededRandom, sleep, until } from './lib/util.js';

const SEND_CHAT_BASE = 1_000_000;

export async function crashes(ctx: ChaosContext): Promise<ScenarioResult> {
  const result = emptyResult('1. crashes (kill -9)');
  const began = Date.now();
  const recipients = ctx.quick ? 5_000 : 20_000;
  const kills = ctx.quick ? 6 : 20;
  const rate = ctx.quick ? 250 : 500;
  const sends = ctx.quick ? 100 : 300;
  const random = seededRandom(ctx.seed ^ 0x0c0ffee1);
  result.faults = `${kills} × kill -9 (random daemon of 2, restarted at once) during a ${recipients.toLocaleString('en')}-recipient broadcast at ${rate}/s + ${sends} send jobs`;

  const server = await ctx.server();
  const db = await server.createDatabase('chaos_crashes');
  const { api, apiRoot } = await startStandIn({ rateLimit: rate });
  const fleet = new Fleet({ databaseUrl: db.url, apiRoot, token: CHAOS_TOKEN, rateLimit: rate, concurrency: 4 }, ctx.logDir, 'crashes');
  const daemons = [fleet.add('a'), fleet.add('b')];
  let stopped = false;
  try {
    await fleet.startAll();
    const { rows } = await db.pool.query(
      `INSERT INTO broadcast_queue_jobs (job_type, payload)
       SELECT 'broadcast', jsonb_build_object('message', jsonb_build_object('text', 'chaos: crashes'), 'chat_ids', jsonb_agg(g))
         FROM generate_series(1, $1::int) g
       RETURNING job_id`,
      [recipients],
    );
    const broadcastJobId = rows[0].job_id as number;
    ctx.say(`  broadcast job ${broadcastJobId}: ${recipients} recipients at ${rate}/s; ${kills} kills to come`);

    // send jobs trickle in over the expected run, so that kills also hit daemons in the middle of them.
    const expectedMs = (recipients / rate) * 1000;
    let trickling = true;
    const trickle = (async () => {
      for (let i = 1; i <= sends && trickling; i++) {
        await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, payload) VALUES ('send', $1)`, [{ chat_id: SEND_CHAT_BASE + i, message: { text: `chaos: send ${i}` } }]).catch(() => undefined);
        await sleep(expectedMs / sends);
      }
    })();

    let ledgerInFlight = 0;
    let sendsInFlight = 0;
    let killsWhileHolding = 0;
    const meanGap = expectedMs / kills;
    for (let k = 1; k <= kills; k++) {
      await sleep(between(random, 0.5, 1.5) * meanGap);
      // Either daemon may die, but the one holding the broadcast more often: that is where a kill
      // can cost unknown outcomes or duplicates.
      const holder = (await db.pool.query('SELECT locked_by FROM broadcast_queue_jobs WHERE job_id = $1', [broadcastJobId])).rows[0]?.locked_by as string | null;
      const holding = holder ? fleet.byDaemonId(holder) : undefined;
      const target: DaemonSlot = holding && random() < 0.6 ? holding : pick(random, daemons);
      const daemonId = target.daemonId;
      // What the daemon has in flight when it dies, read while it is frozen: read after the kill,
      // the other daemon's rescue (as soon as the dead connection is noticed) had sometimes already
      // turned those rows 'unknown', and the bound counted fewer than the kill left.
      target.freeze();
      const pid = target.pid!;
      if (!(await backendsSettled(db.pool, pid))) ctx.say(`  kill ${k}: ${target.name} still had a statement running 5 s after the freeze; counting anyway`);
      const inFlight = await db.pool.query(
        `SELECT (SELECT count(*) FROM broadcast_deliveries d JOIN broadcast_queue_jobs j ON j.job_id = $2
                  JOIN broadcasts b ON b.broadcast_id = d.broadcast_id AND b.job_id = j.job_id
                 WHERE d.status = 'sending' AND j.status = 'processing' AND j.locked_by = $1)::int AS ledger,
                (SELECT count(*) FROM broadcast_queue_jobs WHERE job_type = 'send' AND status = 'processing' AND locked_by = $1)::int AS sends,
                (SELECT locked_by = $1 FROM broadcast_queue_jobs WHERE job_id = $2) AS held`,
        [daemonId, broadcastJobId],
      );
      const r = inFlight.rows[0];
      ledgerInFlight += r.ledger;
      sendsInFlight += r.sends;
      if (r.held) killsWhileHolding++;
      await target.kill9();
      ctx.say(`  kill ${k}/${kills}: ${target.name}${r.held ? ' (held the broadcast)' : ''}, ${r.ledger} ledger rows sending, ${r.sends} send jobs processing`);
      await target.start();
    }
    trickling = false;
    await trickle;

    const done = await until(async () => {
      const { rows: s } = await db.pool.query(`SELECT count(*) FILTER (WHERE status IN ('pending', 'processing'))::int AS open FROM broadcast_queue_jobs WHERE job_type IN ('send', 'broadcast')`);
      return s[0].open === 0 ? true : null;
    }, 240_000, 'every job to finish').catch((e: Error) => e);
    if (done instanceof Error) result.failures.push(done.message);

    // Verdicts, from the ledger, the job rows and what the stand-in actually received.
    await api.sync();
    const delivered = deliveriesByChat(api);
    const job = (await db.pool.query('SELECT status, attempts, result, last_error FROM broadcast_queue_jobs WHERE job_id = $1', [broadcastJobId])).rows[0];
    if (job.status !== 'completed') result.failures.push(`broadcast job ${broadcastJobId} ended ${job.status} (attempt ${job.attempts}): ${job.last_error}`);
    const ledger = (await db.pool.query(`SELECT chat_id, status, outcome FROM broadcast_deliveries`)).rows as { chat_id: number; status: string; outcome: string | null }[];
    const openRows = ledger.filter((l) => !['sent', 'failed', 'skipped', 'unknown'].includes(l.status));
    const sentNotReceived = ledger.filter((l) => l.status === 'sent' && (delivered.get(l.chat_id) ?? 0) === 0);
    const missingRows = recipients - ledger.length;
    const failedRows = ledger.filter((l) => l.status === 'failed' || l.status === 'skipped');
    const ledgerUnknown = ledger.filter((l) => l.status === 'unknown').length;
    const sendRows = (await db.pool.query(`SELECT job_id, status, payload, last_error FROM broadcast_queue_jobs WHERE job_type = 'send'`)).rows as { job_id: number; status: string; payload: { chat_id: number }; last_error: string | null }[];
    const openSends = sendRows.filter((s) => s.status === 'pending' || s.status === 'processing');
    const sendUnknown = sendRows.filter((s) => s.status === 'failed' && /outcome unknown/.test(s.last_error ?? ''));
    const sendOtherFailures = sendRows.filter((s) => s.status === 'failed' && !/outcome unknown/.test(s.last_error ?? ''));
    const sendCompletedNotReceived = sendRows.filter((s) => s.status === 'completed' && (delivered.get(s.payload.chat_id) ?? 0) === 0);
    const processing = (await db.pool.query(`SELECT count(*)::int AS n FROM broadcast_queue_jobs WHERE status = 'processing'`)).rows[0].n as number;

    result.lost = openRows.length + sentNotReceived.length + Math.max(0, missingRows) + openSends.length + sendCompletedNotReceived.length + (job.status === 'completed' ? 0 : 1);
    result.duplicates = [...delivered.values()].filter((n) => n > 1).length;
    result.unknown = ledgerUnknown + sendUnknown.length;
    result.unknownNote = `≤ ${ledgerInFlight + sendsInFlight} in flight at the kills`;
    if (openRows.length) result.failures.push(`${openRows.length} ledger rows never reached a final state (e.g. chat ${openRows[0]!.chat_id}: ${openRows[0]!.status})`);
    if (missingRows) result.failures.push(`${missingRows} recipients have no ledger row`);
    if (sentNotReceived.length) result.failures.push(`${sentNotReceived.length} ledger rows say sent but the stand-in never received them (e.g. chat ${sentNotReceived[0]!.chat_id})`);
    if (openSends.length) result.failures.push(`${openSends.length} send jobs never finished (e.g. job ${openSends[0]!.job_id}: ${openSends[0]!.status})`);
    if (sendCompletedNotReceived.length) result.failures.push(`${sendCompletedNotReceived.length} send jobs completed but the stand-in never received them`);
    if (result.duplicates) result.failures.push(`${result.duplicates} chats received the message more than once (e.g. chat ${[...delivered].find(([, n]) => n > 1)![0]})`);
    if (ledgerUnknown > ledgerInFlight) result.failures.push(`${ledgerUnknown} unknown ledger outcomes but only ${ledgerInFlight} rows were 'sending' at the kills`);
    if (sendUnknown.length > sendsInFlight) result.failures.push(`${sendUnknown.length} send jobs failed as unknown but only ${sendsInFlight} were processing at the kills`);
    if (processing) result.failures.push(`${processing} jobs left 'processing'`);
    if (failedRows.length) result.failures.push(`${failedRows.length} recipients failed or were skipped with no fault injected (e.g. chat ${failedRows[0]!.chat_id}: ${failedRows[0]!.outcome})`);
    if (sendOtherFailures.length) result.failures.push(`${sendOtherFailures.length} send jobs failed for another reason (e.g. job ${sendOtherFailures[0]!.job_id}: ${sendOtherFailures[0]!.last_error})`);
    const busiest = api.maxCallsInWindow(1000);
    if (busiest > rate) result.failures.push(`rate limit broken: ${busiest} calls in one second (limit ${rate}); ${api.tooManyRequests} answered 429`);

    result.notes.push(`broadcast: ${JSON.stringify(job.result)}; attempts ${job.attempts}; ${killsWhileHolding} of ${kills} kills hit the daemon holding it`);
    result.notes.push(`in flight at the kills: ${ledgerInFlight} ledger rows 'sending', ${sendsInFlight} send jobs 'processing'; unknown afterwards: ${ledgerUnknown} ledger rows, ${sendUnknown.length} send jobs`);
    result.notes.push(`send jobs: ${sendRows.filter((s) => s.status === 'completed').length} completed, ${sendUnknown.length} unknown, of ${sendRows.length}`);
    result.notes.push(`stand-in: ${api.delivered.length} messages received, busiest second ${busiest} calls (limit ${rate}), ${api.tooManyRequests} × 429`);
    if (result.duplicates) {
      const twice = [...delivered].filter(([, n]) => n > 1).map(([chat]) => chat);
      const calls = api.calls.filter((c) => twice.slice(0, 5).includes(Number(c.chatId))).map((c) => `${c.chatId}@${Math.round(c.at)}ms:${c.status}`);
      result.notes.push(`chats received twice: ${twice.slice(0, 20).join(', ')}${twice.length > 20 ? ' …' : ''}; their calls (chat@stand-in ms:status): ${calls.join(' ')}`);
    }
    if (result.failures.length) await dumpDatabase(db.pool, path.join(ctx.logDir, `${db.name}.json`));
    const rss = fleet.rss();
    await fleet.stopAll();
    stopped = true;
    absorbFleet(result, fleet, rss);
  } finally {
    if (!stopped) await fleet.killAll();
    await api.stop();
    await db.drop();
    result.durationMs = Date.now() - began;
  }
  return result;
}
