// An A/B test decided on a metric other than CTR, in the right direction (a lower opt-out rate
// wins), stored through the library's createBroadcast; the held rest who opted out or blocked the
// bot during decide_after are skipped at the decision; and the engagement series /metrics shows.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseAbTest } from '../../src/broadcast/ab-test.js';
import { PayloadError } from '../../src/errors.js';
import { abTest, broadcastReport } from '../../src/engagement/report.js';
import { startRedirectServer } from '../../src/engagement/redirect-server.js';
import { startAdminServer } from '../../src/http/admin-server.js';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import { runBqctl } from '../cli/run-bqctl.js';
import { withTelegram, jobRow, range } from '../helpers/telegram.js';
import { waitForEvent, watchJobs } from '../helpers/wait.js';

const PUBLIC = 'https://t.example.com';
const tracking = { publicUrl: PUBLIC, linkSecret: 'ab-metric-link-secret-0123456789abcdef' };
const TOKEN = 'ab-metric-admin-token-0123456789abcdef';
const offer = (name: string) => ({ text: `Offer ${name}`, entities: [{ type: 'text_link', offset: 0, length: 5, url: `https://shop.example.com/${name}` }] });
const variants = [{ name: 'A', weight: 1, message: offer('A') }, { name: 'B', weight: 1, message: offer('B') }];
const CHATS = range(7_000, 100);

const person = (id: number) => ({ id, is_bot: false, first_name: 'x' });
let updateId = 1;
const stop = (chatId: number) => ({
  update_id: updateId++,
  message: { message_id: updateId, date: Math.floor(Date.now() / 1000), chat: { id: chatId, type: 'private' }, from: person(chatId), text: '/stop', entities: [{ type: 'bot_command', offset: 0, length: 5 }] },
});
const blocked = (chatId: number) => {
  const bot = { id: 123456, is_bot: true, first_name: 'Fake' };
  return { update_id: updateId++, my_chat_member: { chat: { id: chatId, type: 'private' }, from: person(chatId), date: 0, old_chat_member: { status: 'member', user: bot }, new_chat_member: { status: 'kicked', user: bot, until_date: 0 } } };
};

test('the metrics: reply rate higher is better, opt-out and block rates lower is better; each is accepted by ab_test', () => {
  const v = (name: string, people: number) => ({ name, delivered: 100, unique_clickers: 50 - people, repliers: people, opt_outs: people, blocks: people });
  const pair = [v('a', 2), v('b', 20)];
  assert.is(abTest(pair, 'reply_rate').winner, 'b');
  assert.is(abTest(pair, 'opt_out_rate').winner, 'a');
  assert.is(abTest(pair, 'block_rate').winner, 'a');
  assert.is(abTest(pair, 'ctr').winner, 'a');
  assert.is(abTest([v('a', 2), v('b', 3)], 'opt_out_rate').winner, null);
  for (const metric of ['ctr', 'reply_rate', 'opt_out_rate', 'block_rate']) {
    assert.is(parseAbTest({ sample_percent: 10, metric, decide_after: '1h' }, { variants, track: true }, 'p')!.metric, metric);
  }
});

test('the library\'s createBroadcast stores an ab_test checked as the daemon checks it, and refuses a bad one with the reason', async () => {
  await withTelegram({ queue: { tracking } }, async ({ db, queue }) => {
    const draft = await queue.createBroadcast({ title: 'Spring', variants, track: true, ab_test: { sample_percent: 10, metric: 'reply_rate', decide_after: '2h' } });
    assert.equal([draft.status, draft.job_id], ['draft', null]);
    const row = (await db.pool.query('SELECT title, track, ab_test, audience FROM broadcasts WHERE broadcast_id = $1', [draft.broadcast_id])).rows[0];
    assert.equal(row, { title: 'Spring', track: true, ab_test: { sample_percent: 10, metric: 'reply_rate', decide_after: '2h' }, audience: {} });
    const refused = async (spec: Record<string, unknown>, pattern: RegExp) => {
      const error = await queue.createBroadcast(spec, { send: true }).then(() => null, (e: unknown) => e);
      assert.ok(error instanceof PayloadError, String(error));
      assert.match((error as Error).message, pattern);
    };
    await refused({ variants, track: true, ab_test: { sample_percent: 0, decide_after: '2h' } }, /ab_test\.sample_percent must be a whole number from 1 to 50/);
    await refused({ variants, track: true, ab_test: { sample_percent: 10, metric: 'opens', decide_after: '2h' } }, /ab_test\.metric must be one of ctr, reply_rate, opt_out_rate, block_rate/);
    await refused({ variants, ab_test: { sample_percent: 10, decide_after: '2h' } }, /needs track: true/);
    await refused({ message: { text: 'x' }, track: true, ab_test: { sample_percent: 10, decide_after: '2h' } }, /needs two or more variants/);
    assert.is((await db.pool.query('SELECT count(*)::int AS n FROM broadcasts')).rows[0].n, 1, 'nothing refused was stored');
    assert.is((await db.pool.query('SELECT count(*)::int AS n FROM broadcast_queue_jobs')).rows[0].n, 0);
  });
});

test('decided on opt-out rate (lower wins); the rest who opted out or blocked the bot during the hold are skipped; /metrics counts the decision, clicks and refused tokens', async () => {
  await withTelegram({ queue: { tracking, capture: { flushMs: 60_000 } } }, async ({ db, api, queue }) => {
    const admin = await startAdminServer(queue, { host: '127.0.0.1', port: 0, apiToken: TOKEN });
    try {
      const jobs = watchJobs(queue);
      const created = await queue.createBroadcast(
        { title: 'Spring', variants, chat_ids: CHATS, track: true, ab_test: { sample_percent: 40, metric: 'opt_out_rate', decide_after: '1h', fallback: 'A' } },
        { send: true },
      );
      const jobId = created.job_id!;
      await jobs.done(jobId, (e) => e.outcome.kind === 'snooze', 30_000);
      const broadcastId = created.broadcast_id;
      const { rows } = await db.pool.query('SELECT chat_id, variant FROM broadcast_deliveries WHERE broadcast_id = $1 ORDER BY chat_id', [broadcastId]);
      const variantOf = new Map<number, string | null>(rows.map((r) => [Number(r.chat_id), r.variant]));
      const sampleOf = (name: string) => CHATS.filter((c) => variantOf.get(c) === name);
      const rest = CHATS.filter((c) => variantOf.get(c) === null);
      assert.equal([sampleOf('A').length, sampleOf('B').length, rest.length], [20, 20, 60]);

      // 8 of A's 20 opt out, none of B's: B wins on the opt-out rate. One of A's clicks: CTR would pick A.
      for (const chat of sampleOf('A').slice(0, 8)) queue.recordUpdate(stop(chat));
      const server = await startRedirectServer(queue.redirectHandler(), '127.0.0.1', 0);
      try {
        const toA = api.delivered.find((d) => d.chatId === sampleOf('A')[10])!;
        const url = (toA.body as { entities: { url: string }[] }).entities[0]!.url;
        assert.is((await fetch(`http://127.0.0.1:${server.port}${url.slice(PUBLIC.length)}`, { redirect: 'manual' })).status, 302);
        assert.is((await fetch(`http://127.0.0.1:${server.port}/r/forged0123456789abcdef`, { redirect: 'manual' })).status, 404);
      } finally {
        await server.close();
      }
      // A forged tracked button, as queue.telegraf() hands it over from a callback query.
      assert.is(await queue.tracking!.press('forged0123456789abcdef'), null);
      // During the hold, two of the rest opt out and one blocks the bot.
      const [optOut1, optOut2, blocker] = rest as [number, number, number];
      queue.recordUpdate(stop(optOut1));
      queue.recordUpdate(stop(optOut2));
      queue.recordUpdate(blocked(blocker));
      await queue.flushUpdates();
      await queue.tracking!.flush();

      await db.pool.query('UPDATE broadcasts SET ab_decide_at = now() WHERE broadcast_id = $1', [broadcastId]);
      await db.pool.query("UPDATE broadcast_deliveries SET next_attempt_at = now() WHERE broadcast_id = $1 AND status = 'pending'", [broadcastId]);
      const finished = waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobId === jobId && e.outcome.kind === 'completed', 60_000);
      await db.pool.query("UPDATE broadcast_queue_jobs SET run_at = now() WHERE job_id = $1 AND status = 'pending'", [jobId]);
      await finished;

      const b = (await db.pool.query('SELECT status, total, sent, skipped, ab_winner, ab_sent_variant, ab_test FROM broadcasts WHERE broadcast_id = $1', [broadcastId])).rows[0];
      assert.equal([b.status, b.total, b.sent, b.skipped, b.ab_winner, b.ab_sent_variant, b.ab_test.metric], ['completed', 100, 97, 3, 'B', 'B', 'opt_out_rate']);
      const result = (await jobRow(db, jobId)).result;
      assert.equal([result.sent, result.skipped], [97, 3]);
      const skipped = (await db.pool.query("SELECT chat_id, outcome FROM broadcast_deliveries WHERE broadcast_id = $1 AND status = 'skipped' ORDER BY chat_id", [broadcastId])).rows;
      assert.equal(skipped.map((r) => [Number(r.chat_id), r.outcome]), [[optOut1, 'opted_out'], [optOut2, 'opted_out'], [blocker, 'unreachable']]);
      const got = new Map<number, string[]>();
      for (const d of api.delivered) got.set(Number(d.chatId), [...(got.get(Number(d.chatId)) ?? []), d.text ?? '']);
      assert.equal([optOut1, optOut2, blocker].map((c) => got.get(c)), [undefined, undefined, undefined], 'nothing sent to who left during the hold');
      assert.equal(rest.slice(3).filter((c) => got.get(c)?.join() !== 'Offer B'), [], 'the rest got the winner once');

      const report = (await broadcastReport(db.pool, broadcastId))!;
      assert.equal([report.ab_test!.metric, report.ab_test!.better, report.ab_test!.decision!.winner], ['opt_out_rate', 'lower', 'B']);
      assert.equal(report.variants.map((v) => [v.name, v.opt_outs, v.unique_clickers]), [['A', 8, 1], ['B', 0, 0]]);
      const shown = await runBqctl(['broadcast', 'report', String(broadcastId)], { DATABASE_URL: db.url });
      assert.match(shown.stdout, /A\/B on opt-out rate, lower is better \(two-proportion z-test, alpha 0\.05\)/);

      const metrics = await (await fetch(`${admin.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
      assert.match(metrics, 'broadcast_queue_ab_decisions_total{metric="opt_out_rate",outcome="winner"} 1');
      assert.match(metrics, 'broadcast_queue_engagement_total{kind="click"} 1');
      assert.match(metrics, 'broadcast_queue_link_tokens_refused_total{kind="link"} 1');
      assert.match(metrics, 'broadcast_queue_link_tokens_refused_total{kind="button"} 1');
      assert.match(metrics, 'broadcast_queue_deliveries_total{job_type="broadcast",outcome="skipped"} 3');
      assert.not.match(metrics, /(ab_decisions|refused)_total\{[^}]*broadcast_id/);
    } finally {
      await admin.close();
    }
  });
});

test.run();
