/// <reference lib="dom" />
// The dashboard in a real browser through the main flows (browser-helpers.ts: chromium, logins,
// screenshots; `BQ_SCREENSHOTS_DIR=docs npm test` renews the README's).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import path from 'node:path';
import { withTelegram, jobRow, insertJob, range } from '../helpers/telegram.js';
import { until, waitForEvent, watchJobs } from '../helpers/wait.js';
import { startRedirectServer } from '../../src/engagement/redirect-server.js';
import { broadcastReport } from '../../src/engagement/report.js';
import { SimulatedRecipients } from '../../src/testing/index.js';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import { ADMIN_TOKEN, insertFinishedJob, READ_TOKEN } from './helpers.js';
import { browserTest, shotsDir as shots, withBrowser, type TestPage } from './browser-helpers.js';

const it = browserTest('dashboard browser tests');

const problemsOf = (page: TestPage) => page.problems;

it('log in, watch a broadcast progress live, pause and resume it', async () => {
  await withTelegram({ queue: { rateLimit: 25 } }, async (world) => {
    await withBrowser(world, async (server, open) => {
      const page = await open(ADMIN_TOKEN);
      const jobId = await insertJob(world.db, 'broadcast', { message: { text: 'live' }, chat_ids: range(1, 600) });
      const broadcastId = await until(async () => (await world.db.pool.query('SELECT broadcast_id FROM broadcasts WHERE job_id = $1', [jobId])).rows[0]?.broadcast_id as number | undefined, 10_000, 'the broadcast row');
      // The overview lists it once its live stream sees it (the page reloads when the set changes).
      await page.waitForSelector(`a[href="/broadcasts/${broadcastId}"]`, { timeout: 10_000 });
      await page.waitForFunction(() => (document.querySelector('#chart-hour canvas') as HTMLCanvasElement | null) !== null);
      await page.screenshot({ path: path.join(shots, 'dashboard-overview.png'), fullPage: true });

      await page.goto(`${server.url}/broadcasts/${broadcastId}`);
      const sel = `[data-live="b:${broadcastId}:done"]`;
      const first = Number((await page.textContent(sel))!.replace(/,/g, ''));
      // Live: the count grows on the page without a reload.
      await page.waitForFunction(([s, n]) => Number(document.querySelector(s as string)!.textContent!.replace(/,/g, '')) > (n as number) + 20, [sel, first] as const, { timeout: 15_000 });
      await page.screenshot({ path: path.join(shots, 'dashboard-broadcast.png'), fullPage: true });

      // Each action answers with a redirect to this same page, so the URL cannot tell the pages
      // apart: wait for the notice of this action, not for any notice (the pause's is still shown
      // until the resume's page has loaded).
      await Promise.all([page.waitForURL(`${server.url}/broadcasts/${broadcastId}`), page.click('form[action$="/pause"] button')]);
      await page.locator('.notice.done', { hasText: 'is paused' }).waitFor();
      assert.is((await world.db.pool.query('SELECT status FROM broadcasts WHERE broadcast_id = $1', [broadcastId])).rows[0].status, 'paused');
      await page.screenshot({ path: path.join(shots, 'dashboard-broadcast-paused.png'), fullPage: true });

      await Promise.all([page.waitForURL(`${server.url}/broadcasts/${broadcastId}`), page.click('form[action$="/resume"] button')]);
      await page.locator('.notice.done', { hasText: 'is sending' }).waitFor();
      assert.is((await world.db.pool.query('SELECT status FROM broadcasts WHERE broadcast_id = $1', [broadcastId])).rows[0].status, 'sending');
      assert.equal(problemsOf(page), [], 'no script error or CSP violation on the pages');
    });
  });
});

it('retry a failed job, filter jobs; a CSRF-less POST is refused', async () => {
  await withTelegram({}, async (world) => {
    const failed = await insertFinishedJob(world.db, 'failed', { order: 'needle-4711' }, 'upstream said <no>');
    for (let i = 0; i < 5; i++) await insertFinishedJob(world.db, 'completed', { order: `hay-${i}` });
    await withBrowser(world, async (server, open) => {
      const page = await open(ADMIN_TOKEN);
      await page.goto(`${server.url}/jobs`);
      await page.selectOption('select[name="state"]', 'failed');
      await page.fill('input[name="q"]', 'needle');
      await Promise.all([page.waitForURL(/\/jobs\?/), page.click('#job-filters button')]);
      const ids = await page.$$eval('table.jobs tbody tr td:first-child a', (as) => as.map((a) => a.textContent));
      assert.equal(ids, [String(failed)]);
      assert.match((await page.textContent('table.jobs'))!, 'upstream said <no>');
      await page.screenshot({ path: path.join(shots, 'dashboard-jobs.png'), fullPage: true });

      // A POST without the CSRF token, from the logged-in page itself, changes nothing.
      const refused = await page.evaluate(async (id) => (await fetch(`/jobs/${id}/retry`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: '' })).status, failed);
      assert.is(refused, 403);
      problemsOf(page).length = 0; // the console's note of that 403 was asked for
      assert.is((await jobRow(world.db, failed)).status, 'failed');

      await page.click(`a[href="/jobs/${failed}"]`);
      await Promise.all([page.waitForURL(`${server.url}/jobs/${failed}`), page.click('form[action$="/retry"] button')]);
      await page.waitForSelector('.notice.done');
      assert.is((await jobRow(world.db, failed)).status, 'pending');
      await page.screenshot({ path: path.join(shots, 'dashboard-job.png'), fullPage: true });
      assert.equal(problemsOf(page), []);
    });
  });
});

it('retry every job matching the filter: the confirmation says how many, then they are retried', async () => {
  await withTelegram({}, async (world) => {
    const needles: number[] = [];
    for (let i = 0; i < 3; i++) needles.push(await insertFinishedJob(world.db, 'failed', { order: `needle-${i}` }, 'card declined'));
    const hay = await insertFinishedJob(world.db, 'failed', { order: 'hay' }, 'card declined');
    await withBrowser(world, async (server, open) => {
      const page = await open(ADMIN_TOKEN);
      await page.goto(`${server.url}/jobs?state=failed&q=needle`);
      await Promise.all([page.waitForURL(/\/jobs\/bulk\?/), page.click('p.bulk a[href*="action=retry"]')]);
      assert.match((await page.textContent('#bulk-count'))!, '3 jobs will be retried');
      await page.screenshot({ path: path.join(shots, 'dashboard-jobs-bulk.png'), fullPage: true });
      await Promise.all([page.waitForURL(`${server.url}/jobs?state=failed&q=needle`), page.click('#bulk-confirm button')]);
      await page.locator('.notice.done', { hasText: 'Retried 3 jobs matching the filter.' }).waitFor();
      for (const id of needles) assert.is((await jobRow(world.db, id)).status, 'pending');
      assert.is((await jobRow(world.db, hay)).status, 'failed');
      assert.equal(problemsOf(page), []);
    });
  });
});

it('a tracked A/B broadcast\'s page shows its engagement report, the plan and then the decision', async () => {
  const PUBLIC = 'https://t.example.com';
  const offer = (name: string) => ({ text: `Offer ${name}`, entities: [{ type: 'text_link', offset: 0, length: 5, url: `https://shop.example.com/${name}` }] });
  await withTelegram({ queue: { tracking: { publicUrl: PUBLIC, linkSecret: 'dashboard-ab-link-secret-0123456789' } } }, async (world) => {
    const { db, api, queue } = world;
    const redirect = await startRedirectServer(queue.redirectHandler(), '127.0.0.1', 0);
    const people = new SimulatedRecipients(api, { publicUrl: PUBLIC, redirectBase: `http://127.0.0.1:${redirect.port}`, clickRate: (text) => (text === 'Offer B' ? 0.5 : 0.05), seed: 15 });
    try {
      const jobs = watchJobs(queue);
      const jobId = await insertJob(db, 'broadcast', {
        title: 'Spring offer', variants: [{ name: 'A', weight: 1, message: offer('A') }, { name: 'B', weight: 1, message: offer('B') }],
        chat_ids: range(9_000, 300), track: true, ab_test: { sample_percent: 50, metric: 'ctr', decide_after: '1h' },
      });
      await jobs.done(jobId, (e) => e.outcome.kind === 'snooze', 30_000);
      await people.settled();
      await queue.flushUpdates(); // clicks are written in batches
      const broadcastId = (await jobRow(db, jobId)).payload.broadcast_id as number;
      await withBrowser(world, async (server, open) => {
        const page = await open(ADMIN_TOKEN);
        await page.goto(`${server.url}/broadcasts/${broadcastId}`);
        // The first view shows "counting…"; the live stream reloads the page once the report is kept.
        await page.waitForSelector('#engagement table.engagement');
        const before = (await broadcastReport(db.pool, broadcastId))!;
        const cells = async (label: string) => page.$$eval(`#engagement table.engagement tr`, (rows, l) => Array.from(rows.find((r) => r.querySelector('th')?.textContent?.startsWith(l as string))?.children ?? []).map((c) => c.textContent).join('|'), label);
        for (const v of before.variants) assert.match(await cells(`variant ${v.name}`), `|${v.delivered}|${v.unique_clickers}|${v.clicks}|${(v.ctr! * 100).toFixed(1)}%|`);
        assert.match((await page.textContent('#ab-test'))!, 'not yet: due');
        assert.match((await page.textContent('#engagement table.links'))!, 'https://shop.example.com/');

        // decide_after passes: the winner goes to the rest.
        await db.pool.query('UPDATE broadcasts SET ab_decide_at = now() WHERE broadcast_id = $1', [broadcastId]);
        await db.pool.query("UPDATE broadcast_deliveries SET next_attempt_at = now() WHERE broadcast_id = $1 AND status = 'pending'", [broadcastId]);
        const finished = waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobId === jobId && e.outcome.kind === 'completed', 60_000);
        await db.pool.query("UPDATE broadcast_queue_jobs SET run_at = now() WHERE job_id = $1 AND status = 'pending'", [jobId]);
        await finished;
        await people.settled();
        await queue.flushUpdates();
        await page.goto(`${server.url}/broadcasts/${broadcastId}`);
        // The kept report was counted while sending: the completed broadcast's is counted afresh.
        await page.waitForSelector('#engagement table.engagement');
        const after = (await broadcastReport(db.pool, broadcastId))!;
        const decision = after.ab_test!.decision!;
        assert.match((await page.textContent('#ab-test'))!, `the rest were sent ${decision.sent_variant}`);
        assert.match(await cells('total'), `|${after.delivered}|${after.unique_clickers}|${after.clicks}|`);
        assert.match(await cells('the rest'), `(sent ${decision.sent_variant})`);
        await page.screenshot({ path: path.join(shots, 'dashboard-broadcast-engagement.png'), fullPage: true });
        assert.equal(problemsOf(page), []);
      });
    } finally {
      people.stop();
      await redirect.close();
    }
  });
});

it('a read-only login sees the pages but no button, and cannot change anything', async () => {
  await withTelegram({}, async (world) => {
    const failed = await insertFinishedJob(world.db, 'failed', { n: 1 }, 'boom');
    await withBrowser(world, async (server, open) => {
      const page = await open(READ_TOKEN);
      assert.match((await page.textContent('header .who'))!, 'read-only');
      await page.goto(`${server.url}/jobs/${failed}`);
      assert.is(await page.$('form[action$="/retry"]'), null);
      // With the page's own CSRF token: still refused, the session is read-only.
      const status = await page.evaluate(async (id) => {
        const csrf = document.querySelector('meta[name="bq-csrf"]')!.getAttribute('content')!;
        return (await fetch(`/jobs/${id}/retry`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-csrf-token': csrf }, body: '' })).status;
      }, failed);
      assert.is(status, 403);
      assert.is((await jobRow(world.db, failed)).status, 'failed');
      await page.goto(`${server.url}/health`);
      await page.screenshot({ path: path.join(shots, 'dashboard-health.png'), fullPage: true });
    });
  });
});

test.run();
