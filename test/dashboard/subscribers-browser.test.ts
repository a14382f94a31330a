/// <reference lib="dom" />
// The Subscribers page in a real browser (Debian's chromium through playwright-core, as in
// browser.test.ts): choose a CSV, import it, watch the progress end without a reload, read the
// rejected rows. Screenshots go to $BQ_SCREENSHOTS_DIR when set, else to a temporary directory.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import path from 'node:path';
import pg from 'pg';
import { withTelegram } from '../helpers/telegram.js';
import { ADMIN_TOKEN } from './helpers.js';
import { browserTest, shotsDir as shots, withBrowser } from './browser-helpers.js';

const it = browserTest('dashboard subscribers browser test');

it('import a CSV: the progress runs live to the end and the rejected rows are listed by line', async () => {
  await withTelegram({}, async (world) => {
    await world.db.pool.query(`INSERT INTO broadcast_subscribers (chat_id, language_code, tags, opted_out, unreachable_reason)
      SELECT g, (ARRAY['en', 'de', 'pt-br', 'uk', NULL])[1 + g % 5], CASE WHEN g % 3 = 0 THEN ARRAY['news'] WHEN g % 7 = 0 THEN ARRAY['vip', 'news'] ELSE '{}' END,
             g % 40 = 0, CASE WHEN g % 25 = 0 THEN 'blocked' END
        FROM generate_series(1, 2400) g`);
    // Holds the importer's INSERT until the page has shown the import running.
    const locker = new pg.Client({ connectionString: world.db.url });
    await withBrowser(world, async (_server, open) => {
      try {
        const page = await open(ADMIN_TOKEN);
        const problems = page.problems;
        await page.click('header nav a[href="/subscribers"]');
        await page.waitForSelector('#by-tag');
        assert.match((await page.textContent('#reach'))!, '2,400');

        await locker.connect();
        await locker.query('BEGIN');
        await locker.query('LOCK TABLE broadcast_subscribers IN EXCLUSIVE MODE');
        const csv = ['chat_id,language_code,tags,plan', ...Array.from({ length: 40 }, (_, i) => `${5000 + i},en,imported;vip,pro`),
          '12x,en,,', '5100,en-<b>,,', '5101,en,,,extra', '"5102,en,,'].join('\n');
        await page.setInputFiles('#import-form input[type="file"]', { name: 'new-users.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
        await Promise.all([page.waitForURL(/\/subscribers\/imports\/[0-9a-f]{12}$/), page.click('#import-form button')]);
        await page.waitForSelector('[data-import][data-state="running"]');
        await locker.query('COMMIT');

        // The live stream sees the end and the page reloads itself with the report.
        await page.waitForSelector('[data-import][data-state="finished"]', { timeout: 15_000 });
        assert.is(await page.getAttribute('[data-import] progress', 'value'), '1.0000');
        const id = (await page.getAttribute('[data-import]', 'data-import'))!;
        assert.is(await page.textContent(`[data-live="imp:${id}:imported"]`), '40');
        assert.is(await page.textContent(`[data-live="imp:${id}:rejected"]`), '4');
        const rejected = await page.$$eval('table.rejected tbody tr', (rows) => rows.map((r) => Array.from(r.querySelectorAll('td'), (td) => td.textContent)));
        assert.equal(rejected.map((r) => r[0]), ['42', '43', '44', '45']);
        assert.match(rejected[1]![1]!, 'language_code must be a language tag');
        assert.match(rejected[1]![1]!, 'en-<b>');
        assert.match(rejected[3]![1]!, 'a quote opened on this line is not closed');
        await page.screenshot({ path: path.join(shots, 'dashboard-subscribers-import.png'), fullPage: true });
        assert.is((await world.db.pool.query(`SELECT count(*)::int AS n FROM broadcast_subscribers WHERE 'imported' = ANY(tags)`)).rows[0].n, 40);

        await page.click('a[href="/subscribers"]');
        await page.waitForSelector('#by-tag');
        assert.match((await page.textContent('#reach'))!, '2,440');
        assert.match((await page.textContent('#by-tag'))!, 'imported');
        await page.fill('#lookup input[name="chat_id"]', '5001');
        await Promise.all([page.waitForURL(/chat_id=5001/), page.click('#lookup button')]);
        assert.match((await page.textContent('#lookup dl'))!, 'imported, vip');
        await page.screenshot({ path: path.join(shots, 'dashboard-subscribers.png'), fullPage: true });
        assert.equal(problems, [], 'no script error or CSP violation on the pages');
      } finally {
        await locker.end().catch(() => undefined);
      }
    });
  });
});

test.run();
