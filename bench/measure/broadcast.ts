// Broadcast end to end: our daemon binary against the Bot API stand-in, each in its own process.
//  - Fan-out: N subscribers; from the broadcast job's INSERT to the daemon's "audience fanned out
//    into the ledger" log line (its own timestamp), and the daemon's peak RSS over the fan-out and
//    the first second of sending.
//  - Rate: a limit L configured in the daemons (BQ_RATE_LIMIT) and enforced by the stand-in (429
//    above L calls in any rolling second); M messages split over one broadcast per daemon; the
//    achieved rate is (calls − 1) / (last arrival − first arrival) at the stand-in.
import pg from 'pg';
import { cpuSeconds, peakRssMb, resetPeakRss } from '../child.js';
import { collectLines, startDaemon, startFakeApi } from '../daemon.js';
import type { Context, RateCase } from '../plan.js';

export interface FanoutRun {
  ms: number;
  rssMb: number;
}

export interface RateRun {
  perSecond: number;
  /** Achieved rate over the configured limit. */
  share: number;
  tooMany: number;
  maxInWindow: number;
  /** Daemons that ran a broadcast (each should). */
  daemonsUsed: number;
  rssMb: number;
  /** CPU seconds the daemons used over the run, summed. */
  cpuS: number;
}

export interface BroadcastResults {
  fanout: Record<number, FanoutRun[]>;
  rate: { case: RateCase; runs: RateRun[] }[];
}

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export async function measureBroadcast(ctx: Context): Promise<BroadcastResults> {
  const { fanouts, runs, rates, apiLatencyMs } = ctx.plan.broadcast;
  const results: BroadcastResults = { fanout: {}, rate: rates.map((c) => ({ case: c, runs: [] })) };

  for (const subscribers of fanouts) {
    ctx.progress(`broadcast: preparing ${subscribers.toLocaleString('en-US')} subscribers`);
    const template = await ctx.server.createDatabase(`tpl_subs_${subscribers}`, ctx.templates.ours);
    await withClient(ctx.server.urlFor(template), async (c) => {
      await c.query(`INSERT INTO broadcast_subscribers (chat_id) SELECT g FROM generate_series(1, ${subscribers}) g`);
      await c.query('VACUUM ANALYZE broadcast_subscribers');
    });
    results.fanout[subscribers] = [];
    for (let run = 0; run < runs; run++) {
      ctx.progress(`broadcast: fan-out to ${subscribers.toLocaleString('en-US')}, run ${run + 1} of ${runs}`);
      const db = await ctx.server.createDatabase(`fanout_${subscribers}_${run}`, template);
      const url = ctx.server.urlFor(db);
      const api = await startFakeApi({ rateLimit: 30, latencyMs: apiLatencyMs });
      const daemon = await startDaemon({ DATABASE_URL: url, TELEGRAM_API_ROOT: api.apiRoot, BQ_RATE_LIMIT: '30' });
      try {
        const fannedOut = daemon.waitFor('audience fanned out into the ledger', () => true, 300_000);
        const sending = api.next('reached', () => true, 300_000);
        api.send({ cmd: 'expect', n: 30 });
        const insertedAt = await withClient(url, async (c) => {
          const { rows } = await c.query(`INSERT INTO broadcasts (title, message, audience) VALUES ('bench', '{"text": "hello"}', '{}') RETURNING broadcast_id`);
          const at = Date.now();
          await c.query(`INSERT INTO broadcast_queue_jobs (job_type, payload) VALUES ('broadcast', $1)`, [{ broadcast_id: rows[0].broadcast_id }]);
          return at;
        });
        const line = await fannedOut;
        await sending;
        results.fanout[subscribers]!.push({ ms: line.time - insertedAt, rssMb: peakRssMb(daemon.pid) });
      } finally {
        await daemon.stop();
        await api.stop();
        await ctx.server.dropDatabase(db);
      }
    }
    await ctx.server.dropDatabase(template);
  }

  for (const entry of results.rate) entry.runs = await rateCase(ctx, entry.case, runs, apiLatencyMs);
  return results;
}

/** One limit and number of daemons: the daemons and the stand-in start once, then run `runs` times. */
async function rateCase(ctx: Context, { limit, daemons: count, messages }: RateCase, runs: number, apiLatencyMs: number): Promise<RateRun[]> {
  const label = `${limit}/s with ${count} daemon${count > 1 ? 's' : ''}`;
  const db = await ctx.server.createDatabase(`rate_${limit}_${count}`, ctx.templates.ours);
  const url = ctx.server.urlFor(db);
  const api = await startFakeApi({ rateLimit: limit, latencyMs: apiLatencyMs });
  // Concurrency 1, so that each daemon takes one of the broadcasts.
  const env = { DATABASE_URL: url, TELEGRAM_API_ROOT: api.apiRoot, BQ_RATE_LIMIT: String(limit), BQ_CONCURRENCY: '1' };
  const daemons = await Promise.all(Array.from({ length: count }, () => startDaemon(env)));
  const out: RateRun[] = [];
  try {
    for (let run = 0; run < runs; run++) {
      ctx.progress(`broadcast: ${label}, run ${run + 1} of ${runs}`);
      for (const d of daemons) resetPeakRss(d.pid);
      const cpuBefore = daemons.reduce((sum, d) => sum + cpuSeconds(d.pid), 0);
      api.send({ cmd: 'reset' });
      const budgetMs = (messages / limit) * 3_000 + 60_000;
      const finished = collectLines(daemons, 'broadcast finished', count, budgetMs);
      const reached = api.next('reached', () => true, budgetMs);
      api.send({ cmd: 'expect', n: messages });
      // One broadcast per daemon; new chats each run, so no per-chat pacing carries over.
      const per = Math.ceil(messages / count);
      await withClient(url, (c) =>
        c.query(
          `INSERT INTO broadcast_queue_jobs (job_type, payload)
           SELECT 'broadcast', jsonb_build_object('message', jsonb_build_object('text', 'hello ' || d),
                  'chat_ids', (SELECT jsonb_agg($4 + g) FROM generate_series(d * $1 + 1, LEAST((d + 1) * $1, $2)) g))
             FROM generate_series(0, $3 - 1) d`,
          [per, messages, count, run * messages],
        ),
      );
      await reached;
      const writers = await finished;
      const statsReply = api.next('stats');
      api.send({ cmd: 'stats' });
      const stats = await statsReply;
      const perSecond = ((stats.sends - 1) / (stats.last - stats.first)) * 1000;
      const rssMb = Math.max(...daemons.map((d) => peakRssMb(d.pid)));
      const cpuS = daemons.reduce((sum, d) => sum + cpuSeconds(d.pid), 0) - cpuBefore;
      out.push({ cpuS,  perSecond, share: perSecond / limit, tooMany: stats.tooMany, maxInWindow: stats.maxInWindow, daemonsUsed: new Set(writers).size, rssMb });
    }
  } finally {
    await Promise.all(daemons.map((d) => d.stop()));
    await api.stop();
    await ctx.server.dropDatabase(db);
  }
  return out;
}
