// The report counts what the recipients did: a tracked A/B broadcast through the stand-in, clicks
// made through the real redirect listener at a different rate per variant, a reply and an opt-out
// through the update middleware; the admin API and bqctl show the same numbers.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startRedirectServer } from '../../src/engagement/redirect-server.js';
import { startAdminServer } from '../../src/http/admin-server.js';
import { abTest, twoProportionPValue, type BroadcastReport } from '../../src/engagement/report.js';
import { withTelegram, insertJob, jobRow } from '../helpers/telegram.js';
import { watchJobs } from '../helpers/wait.js';
import { json, runBqctl } from '../cli/run-bqctl.js';

const PUBLIC = 'https://t.example.com';
const TOKEN = 'report-test-admin-token-0123456789';

test('the two-proportion test: its p-value, and a winner only when the difference is significant', () => {
  // 10/100 against 25/100: z = 2.79, p = 0.0052.
  assert.ok(Math.abs(twoProportionPValue(25, 100, 10, 100) - 0.0052) < 0.0002, String(twoProportionPValue(25, 100, 10, 100)));
  assert.is(twoProportionPValue(0, 50, 0, 50), 1);
  assert.equal(abTest([{ name: 'a', delivered: 100, unique_clickers: 10 }, { name: 'b', delivered: 100, unique_clickers: 25 }]).winner, 'b');
  assert.equal(abTest([{ name: 'a', delivered: 100, unique_clickers: 10 }, { name: 'b', delivered: 100, unique_clickers: 13 }]).winner, null);
  // Three variants: each comparison must pass 0.05 / 2.
  assert.equal(abTest([{ name: 'a', delivered: 100, unique_clickers: 10 }, { name: 'b', delivered: 100, unique_clickers: 25 }, { name: 'c', delivered: 100, unique_clickers: 16 }]).winner, null);
});

test('a tracked A/B broadcast: the report equals what the recipients did, in the API and in bqctl', async () => {
  await withTelegram({ queue: { tracking: { publicUrl: PUBLIC, linkSecret: 'report-test-link-secret-0123456789ab' }, capture: { flushMs: 60_000 } } }, async ({ db, api, queue }) => {
    const metrics = queue.metrics();
    const link = (name: string) => ({ text: `Offer ${name}`, entities: [{ type: 'text_link', offset: 0, length: 5, url: `https://shop.example.com/${name}` }], reply_markup: { inline_keyboard: [[{ text: 'Help', url: 'https://shop.example.com/help' }]] } });
    const variants = [{ name: 'a', weight: 1, message: link('a') }, { name: 'b', weight: 1, message: link('b') }];
    const chats = Array.from({ length: 200 }, (_, i) => 5_000 + i);
    const jobs = watchJobs(queue);
    const jobId = await insertJob(db, 'broadcast', { title: 'A/B', variants, chat_ids: chats, track: true });
    await jobs.done(jobId, undefined, 60_000);
    const broadcastId = (await jobRow(db, jobId)).result.broadcast_id;
    const variantOf = new Map<number, string>((await db.pool.query('SELECT chat_id, variant FROM broadcast_deliveries WHERE broadcast_id = $1', [broadcastId])).rows.map((r) => [r.chat_id, r.variant]));

    // Simulated recipients: 1 in 10 of a's follow the offer, 1 in 2 of b's; every fourth b clicker twice; chat 5000 also opens help.
    const server = await startRedirectServer(queue.redirectHandler(), '127.0.0.1', 0);
    const did = { a: { clickers: 0, clicks: 0 }, b: { clickers: 0, clicks: 0 } } as Record<string, { clickers: number; clicks: number }>;
    try {
      const follow = async (url: string) => assert.is((await fetch(`http://127.0.0.1:${server.port}${url.slice(PUBLIC.length)}`, { redirect: 'manual' })).status, 302);
      for (const d of api.delivered) {
        const chatId = Number(d.chatId);
        const variant = variantOf.get(chatId)!;
        const body = d.body as { entities: { url: string }[]; reply_markup: { inline_keyboard: { url: string }[][] } };
        const index = chatId - 5_000;
        const clicks = variant === 'a' ? (index % 10 === 0 ? 1 : 0) : index % 2 === 0 ? (index % 8 === 0 ? 2 : 1) : 0;
        for (let i = 0; i < clicks; i++) await follow(body.entities[0]!.url);
        if (chatId === 5_000) await follow(body.reply_markup.inline_keyboard[0]![0]!.url);
        did[variant]!.clickers += clicks > 0 || chatId === 5_000 ? 1 : 0;
        did[variant]!.clicks += clicks + (chatId === 5_000 ? 1 : 0);
      }
    } finally {
      await server.close();
    }
    const sentTo5001 = api.delivered.find((d) => d.chatId === 5_001)!;
    queue.recordUpdate({ update_id: 1, message: { message_id: 900, date: 0, chat: { id: 5_001, type: 'private' }, from: { id: 5_001, is_bot: false, first_name: 'x' }, text: 'more?', reply_to_message: { message_id: sentTo5001.messageId, date: 0, chat: { id: 5_001, type: 'private' }, from: { id: 1, is_bot: true, first_name: 'bot' } } } });
    queue.recordUpdate({ update_id: 2, message: { message_id: 901, date: 0, chat: { id: 5_003, type: 'private' }, from: { id: 5_003, is_bot: false, first_name: 'x' }, text: '/stop', entities: [{ type: 'bot_command', offset: 0, length: 5 }] } });
    await queue.flushUpdates();

    const admin = await startAdminServer(queue, { host: '127.0.0.1', port: 0, apiToken: TOKEN });
    let report: BroadcastReport;
    try {
      const res = await fetch(`${admin.url}/api/admin/queue/broadcasts/${broadcastId}/report`, { headers: { authorization: `Bearer ${TOKEN}` } });
      assert.is(res.status, 200);
      report = await res.json() as BroadcastReport;
      assert.is((await fetch(`${admin.url}/api/admin/queue/broadcasts/${broadcastId}/report`)).status, 401, 'the report asks for the token like the rest of the admin API');
      assert.is((await fetch(`${admin.url}/api/admin/queue/broadcasts/999999/report`, { headers: { authorization: `Bearer ${TOKEN}` } })).status, 404);
    } finally {
      await admin.close();
    }
    const delivered = (name: string) => [...variantOf.values()].filter((v) => v === name).length;
    for (const v of report.variants) {
      assert.is(v.delivered, delivered(v.name), v.name);
      assert.is(v.unique_clickers, did[v.name]!.clickers, v.name);
      assert.is(v.clicks, did[v.name]!.clicks, v.name);
      assert.is(v.ctr, did[v.name]!.clickers / delivered(v.name));
    }
    assert.equal(report.variants.map((v) => v.name), ['a', 'b']);
    assert.is(report.delivered, 200);
    assert.is(report.unique_clickers, did.a!.clickers + did.b!.clickers);
    assert.is(report.replies, 1);
    assert.is(report.opt_outs, 1);
    assert.is(report.opt_out_rate, 1 / 200);
    assert.is(report.blocks, 0);
    assert.is(report.winner, 'b');
    assert.ok(report.ab_test!.p_value! < 0.001, String(report.ab_test!.p_value));
    const help = report.links.find((l) => l.url === 'https://shop.example.com/help')!;
    assert.equal([help.clicks, help.unique_clickers], [1, 1]);
    assert.is(report.links.reduce((s, l) => s + l.clicks, 0), report.clicks);

    // Prometheus: by kind, no broadcast label.
    const text = await metrics.registry.metrics();
    assert.match(text, `broadcast_queue_engagement_total{kind="click"} ${report.clicks}`);
    assert.match(text, 'broadcast_queue_engagement_total{kind="opt_out"} 1');
    assert.not.match(text, /engagement_total\{[^}]*broadcast/);

    const cli = json<BroadcastReport>(await runBqctl(['broadcast', 'report', String(broadcastId), '--json'], { DATABASE_URL: db.url }));
    assert.equal(cli, report);
    const table = await runBqctl(['broadcast', 'report', String(broadcastId)], { DATABASE_URL: db.url });
    assert.match(table.stdout, 'winner: b');
  });
});

test.run();
