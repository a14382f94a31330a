/// <reference lib="dom" />
// The Compose page in a real browser (Debian's chromium driven by playwright-core, as
// browser.test.ts does): write a message with a button, build a segment and watch its live count,
// see a formatting error as you type and the server refuse it, save a draft that is not sent, send
// a test to one chat, send the broadcast and check the stand-in got it in exactly that segment; a
// read-only login cannot send. Screenshots go to $BQ_SCREENSHOTS_DIR when set (the README's).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import path from 'node:path';
import type { Page } from 'playwright-core';
import type { AdminServer } from '../../src/http/admin-server.js';
import { withTelegram, type TelegramWorld } from '../helpers/telegram.js';
import { until } from '../helpers/wait.js';
import { ADMIN_TOKEN, READ_TOKEN } from './helpers.js';
import { browserTest, shotsDir as shots, withBrowser, type TestPage } from './browser-helpers.js';

const it = browserTest('dashboard compose browser tests');

/** Logged in (see browser-helpers.ts), then on the Compose page. */
async function withCompose(world: TelegramWorld, body: (server: AdminServer, open: (token: string) => Promise<TestPage>) => Promise<void>) {
  await withBrowser(world, (server, open) => body(server, async (token) => {
    const page = await open(token);
    await page.goto(`${server.url}/compose`);
    return page;
  }));
}

/** Chats 101-110: 101-106 tagged vip, of which 104 got a broadcast message an hour ago, 105 is unreachable and 106 opted out. */
async function seedSubscribers(world: TelegramWorld): Promise<void> {
  const pool = world.db.pool;
  await pool.query(`INSERT INTO broadcast_subscribers (chat_id, tags, opted_out, unreachable_reason)
                    SELECT g, CASE WHEN g <= 106 THEN ARRAY['vip'] ELSE ARRAY['other'] END, g = 106, CASE WHEN g = 105 THEN 'blocked' END
                      FROM generate_series(101, 110) g`);
  const { rows } = await pool.query(`INSERT INTO broadcasts (title, message, audience, status) VALUES ('earlier', '{"text": "earlier"}', '{"chat_ids": [104]}', 'completed') RETURNING broadcast_id`);
  await pool.query(`INSERT INTO broadcast_deliveries (broadcast_id, chat_id, status, outcome, sent_at) VALUES ($1, 104, 'sent', 'sent', now() - interval '1 hour')`, [rows[0].broadcast_id]);
}

const countOf = (page: Page, key: string) => page.textContent(`[data-count="${key}"]`);

async function waitForCount(page: Page, key: string, value: string) {
  await page.waitForFunction(([k, v]) => document.querySelector(`[data-count="${k}"]`)?.textContent === v, [key, value] as const, { timeout: 10_000 });
}

async function compose(page: Page, text: string) {
  await page.fill('[name="v0.text"]', text);
  await page.fill('[name="v0.btn_text"]', 'Shop now');
  await page.fill('[name="v0.btn_target"]', 'https://example.com/shop');
  await page.fill('[name="tags_any"]', 'vip');
  await page.fill('[name="frequency_cap"]', '1');
}

it('compose with a button to a segment: live count, a formatting error, a draft not sent, a test, then sent to exactly that segment', async () => {
  await withTelegram({}, async (world) => {
    await seedSubscribers(world);
    await withCompose(world, async (server, open) => {
      const page = await open(ADMIN_TOKEN);
      // Every subscriber at first.
      await waitForCount(page, 'total', '10');

      // A formatting error is shown as you type, from the same parser the server uses.
      await page.fill('[name="v0.text"]', 'Hello <b>VIPs');
      await page.waitForSelector('[data-error-for="v0.text"]:has-text("Can\'t find end tag")');
      // And the server refuses it too, saving nothing.
      await compose(page, 'Hello <b>VIPs');
      await page.click('button[value="send"]');
      await page.locator('.notice.error', { hasText: 'Nothing was saved' }).waitFor();
      page.problems.length = 0; // the console's note of that 422 was asked for
      assert.is((await world.db.pool.query(`SELECT count(*)::int AS n FROM broadcasts WHERE title IS DISTINCT FROM 'earlier'`)).rows[0].n, 0);

      // The live count of the segment, with the frequency cap.
      await compose(page, 'Draft only: <i>not yet</i>');
      await waitForCount(page, 'reachable', '3');
      assert.is(await countOf(page, 'opted_out'), '1');
      assert.is(await countOf(page, 'unreachable'), '1');
      assert.is(await countOf(page, 'over_frequency_cap'), '1');
      assert.is(await countOf(page, 'total'), '6');
      assert.is(await page.textContent('.bubble em'), 'not yet');

      await Promise.all([page.waitForURL(/\/broadcasts\/\d+$/), page.click('button[value="draft"]')]);
      await page.locator('.notice.done', { hasText: 'saved as a draft' }).waitFor();
      const draft = Number(new URL(page.url()).pathname.split('/').pop());
      const saved = (await world.db.pool.query('SELECT status, job_id, message, audience, frequency_cap FROM broadcasts WHERE broadcast_id = $1', [draft])).rows[0];
      assert.equal({ status: saved.status, job_id: saved.job_id, audience: saved.audience, cap: saved.frequency_cap }, { status: 'draft', job_id: null, audience: { tags_any: ['vip'] }, cap: 1 });
      assert.equal(saved.message.reply_markup, { inline_keyboard: [[{ text: 'Shop now', url: 'https://example.com/shop' }]] });
      assert.is((await world.db.pool.query(`SELECT count(*)::int AS n FROM broadcast_queue_jobs WHERE job_type = 'broadcast'`)).rows[0].n, 0, 'no job drives the draft');

      // A test to one chat, through a 'send' job; the page keeps what was written.
      await page.goto(`${server.url}/compose`);
      await compose(page, 'Hello <b>VIPs</b>, 20% off today');
      await page.fill('[name="test_chat_id"]', '555');
      const tested = world.api.waitFor('delivered', (r) => String(r.chatId) === '555');
      await page.click('button[value="test"]');
      await page.locator('.notice.done', { hasText: 'on the way' }).waitFor();
      assert.is((await tested).text, 'Hello <b>VIPs</b>, 20% off today');
      assert.is(await page.inputValue('[name="v0.text"]'), 'Hello <b>VIPs</b>, 20% off today');
      await waitForCount(page, 'reachable', '3');
      assert.is(await page.textContent('.bubble strong'), 'VIPs');
      assert.is(await page.textContent('.keyboard .key'), 'Shop now');
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.screenshot({ path: path.join(shots, 'dashboard-compose.png'), fullPage: true });

      // No wait for the notice here: the broadcast's page reloads when its status changes, and a
      // broadcast to three chats may finish (and reload it without the notice) before it is looked at.
      await Promise.all([page.waitForURL(/\/broadcasts\/\d+$/), page.click('button[value="send"]')]);
      const sent = Number(new URL(page.url()).pathname.split('/').pop());
      await until(async () => (await world.db.pool.query('SELECT status FROM broadcasts WHERE broadcast_id = $1', [sent])).rows[0].status === 'completed' || undefined, 15_000, 'the broadcast to complete');
      const got = world.api.delivered.filter((r) => String(r.chatId) !== '555');
      assert.equal(got.map((r) => Number(r.chatId)).sort(), [101, 102, 103]);
      for (const r of got) {
        assert.is(r.text, 'Hello <b>VIPs</b>, 20% off today');
        assert.equal(r.body.reply_markup, { inline_keyboard: [[{ text: 'Shop now', url: 'https://example.com/shop' }]] });
      }
      const counts = (await world.db.pool.query('SELECT total, sent, skipped FROM broadcasts WHERE broadcast_id = $1', [sent])).rows[0];
      assert.equal(counts, { total: 6, sent: 3, skipped: 3 });
      assert.is((await world.db.pool.query('SELECT status FROM broadcasts WHERE broadcast_id = $1', [draft])).rows[0].status, 'draft', 'the draft is still a draft');
      assert.equal(page.problems, [], 'no script error or CSP violation');
    });
  });
});

it('variants with weights preview side by side; a read-only login previews and counts but cannot send', async () => {
  await withTelegram({}, async (world) => {
    await seedSubscribers(world);
    await withCompose(world, async (server, open) => {
      const page = await open(READ_TOKEN);
      assert.is(await page.$('button[name="intent"]'), null, 'no send buttons');
      await page.fill('[name="v0.text"]', '*Hello* VIPs\\!');
      await page.selectOption('[name="v0.parse_mode"]', 'MarkdownV2');
      await page.click('#add-variant');
      await page.fill('[name="v1.text"]', '_Hi_ VIPs\\!');
      await page.selectOption('[name="v1.parse_mode"]', 'MarkdownV2');
      await page.fill('[name="v1.weight"]', '3');
      await page.fill('[name="tags_any"]', 'vip');
      // No frequency cap here: 104 counts as reachable.
      await waitForCount(page, 'reachable', '4');
      assert.is(await countOf(page, 'over_frequency_cap'), 'no cap');
      assert.equal(await page.$$eval('.bubble', (els) => els.map((e) => e.textContent)), ['Hello VIPs!', 'Hi VIPs!']);
      assert.match((await page.textContent('[data-preview-for="1"] p'))!, 'weight 3 (75 % of recipients)');
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.screenshot({ path: path.join(shots, 'dashboard-compose-variants.png'), fullPage: true });
      const status = await page.evaluate(async () => {
        const form = document.getElementById('compose') as HTMLFormElement;
        const body = new URLSearchParams(new FormData(form) as unknown as Record<string, string>);
        body.set('intent', 'send');
        const csrf = document.querySelector('meta[name="bq-csrf"]')!.getAttribute('content')!;
        return (await fetch('/compose', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-csrf-token': csrf }, body: body.toString() })).status;
      });
      assert.is(status, 403);
      page.problems.length = 0; // the console's note of that 403 was asked for
      assert.is((await world.db.pool.query(`SELECT count(*)::int AS n FROM broadcasts WHERE title IS DISTINCT FROM 'earlier'`)).rows[0].n, 0);
      assert.is(server.url.startsWith('http://127.0.0.1'), true);
    });
  });
});

test.run();
