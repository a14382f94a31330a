// The Subscribers pages over plain HTTP: counts by reach, language and tag (top N), one subscriber
// by chat id, a segment count, and an import through the same importer as bqctl: good rows stored,
// bad rows reported by line, an oversized upload, a CSRF-less and a read-only POST refused, one
// import at a time.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http from 'node:http';
import pg from 'pg';
import { startAdminServer, type AdminServer } from '../../src/http/admin-server.js';
import { countSubscribers } from '../../src/broadcast/subscriber-counts.js';
import { MAX_UPLOAD_BYTES } from '../../src/http/dashboard/subscriber-imports.js';
import { createTestDatabase } from '../helpers/db.js';
import { withTelegram, type TelegramWorld } from '../helpers/telegram.js';
import { ADMIN_TOKEN, DashboardClient, READ_TOKEN } from './helpers.js';

async function withDashboard(world: TelegramWorld, body: (server: AdminServer) => Promise<void>) {
  const server = await startAdminServer(world.queue, { host: '127.0.0.1', port: 0, apiToken: ADMIN_TOKEN, dashboard: { readOnlyToken: READ_TOKEN } });
  try {
    await body(server);
  } finally {
    await server.close();
  }
}

/** 10 subscribers: 1-6 reachable, 7-8 opted out (8 also unreachable), 9-10 unreachable. */
async function seed(world: TelegramWorld): Promise<void> {
  await world.db.pool.query(`INSERT INTO broadcast_subscribers (chat_id, language_code, tags, opted_out, unreachable_reason)
    SELECT g, CASE WHEN g <= 5 THEN 'en' WHEN g <= 8 THEN 'de' END,
           CASE WHEN g <= 3 THEN ARRAY['vip', 'beta'] WHEN g <= 7 THEN ARRAY['beta'] WHEN g = 8 THEN ARRAY['rare'] ELSE '{}' END,
           g IN (7, 8), CASE WHEN g >= 8 THEN 'blocked' END
      FROM generate_series(1, 10) g`);
}

/** Reads the import's live stream until it says the import ended. */
async function importEnded(c: DashboardClient, location: string): Promise<string> {
  const id = location.split('/').pop()!;
  const res = await fetch(`${c.base}/events/imports/${id}`, { headers: { cookie: c.cookie! } });
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  for (let next = await reader.read(); !next.done; next = await reader.read()) {
    text += decoder.decode(next.value, { stream: true });
    const ended = /"state":"(finished|stopped)"/.exec(text);
    if (ended) {
      await reader.cancel().catch(() => undefined);
      return ended[1]!;
    }
  }
  throw new Error(`the stream ended without the import ending: ${text}`);
}

async function upload(c: DashboardClient, csrf: string | null, name: string, body: string, headers: Record<string, string> = {}) {
  return c.request('POST', `/subscribers/import?name=${encodeURIComponent(name)}`, {
    headers: { 'content-type': 'application/octet-stream', 'x-requested-with': 'bq-dashboard', ...(csrf ? { 'x-csrf-token': csrf } : {}), ...headers },
    body,
  });
}

test('countSubscribers: reach in all, by language and by tag; only the top N tags listed, the rest counted', async () => {
  const db = await createTestDatabase();
  try {
    await seed({ db } as TelegramWorld);
    const c = await countSubscribers(db.pool, { top: 2 });
    assert.equal(c.all, { total: 10, reachable: 6, opted_out: 2, unreachable: 2 });
    assert.equal(c.languages, [
      { language_code: 'en', total: 5, reachable: 5, opted_out: 0, unreachable: 0 },
      { language_code: 'de', total: 3, reachable: 1, opted_out: 2, unreachable: 0 },
    ]);
    assert.is(c.language_groups, 3, 'en, de and not given');
    assert.equal(c.tags, [
      { tag: 'beta', total: 7, reachable: 6, opted_out: 1, unreachable: 0 },
      { tag: 'vip', total: 3, reachable: 3, opted_out: 0, unreachable: 0 },
    ]);
    assert.is(c.tag_groups, 3, 'beta, vip and rare');
    assert.is(c.untagged, 2);
    const empty = await createTestDatabase();
    try {
      const none = await countSubscribers(empty.pool);
      assert.equal([none.all.total, none.languages, none.tags, none.tag_groups, none.untagged], [0, [], [], 0, 0]);
    } finally {
      await empty.drop();
    }
  } finally {
    await db.drop();
  }
});

test('the Subscribers page shows the counts, looks up a chat id, counts a segment, and escapes what it shows', async () => {
  await withTelegram({}, async (world) => {
    await seed(world);
    await world.db.pool.query(`INSERT INTO broadcast_subscribers (chat_id, tags, attributes) VALUES (11, ARRAY['<b>x</b>'], '{"note": "<script>alert(1)</script>"}')`);
    await withDashboard(world, async (server) => {
      const c = new DashboardClient(server.url);
      await c.login(READ_TOKEN);
      const r = await c.get('/subscribers');
      assert.is(r.status, 200);
      assert.match(r.text, /<dt>subscribers<\/dt><dd>11<\/dd>/);
      assert.match(r.text, /<dt>reachable<\/dt><dd class="ok">7<\/dd>/);
      assert.match(r.text, /<th scope="row">beta<\/th><td class="num">7<\/td><td class="num">6<\/td><td class="num">1<\/td><td class="num">0<\/td>/);
      assert.match(r.text, /<th scope="row">en<\/th><td class="num">5<\/td>/);
      assert.match(r.text, '&lt;b&gt;x&lt;/b&gt;');
      assert.not.match(r.text, '<b>x</b>');
      assert.match(r.text, 'This session is read-only: it cannot import.');
      assert.not.match(r.text, 'id="import-form"');

      const one = await c.get('/subscribers?chat_id=11');
      assert.match(one.text, '&lt;script&gt;alert(1)&lt;/script&gt;');
      assert.not.match(one.text, '<script>alert');
      assert.match((await c.get('/subscribers?chat_id=8')).text, /<dt>unreachable<\/dt><dd>blocked/);
      assert.match((await c.get('/subscribers?chat_id=4242')).text, 'No subscriber has chat id 4242.');
      assert.is((await c.get('/subscribers?chat_id=12abc')).status, 400);

      const segment = await c.get(`/subscribers?segment=${encodeURIComponent('{"tags_any": ["vip"], "languages": ["EN"]}')}`);
      assert.match(segment.text, /id="segment">[\s\S]*<dt>subscribers<\/dt><dd>3<\/dd>/);
      const bad = await c.get(`/subscribers?segment=${encodeURIComponent('{"tagz": ["vip"]}')}`);
      assert.is(bad.status, 200);
      assert.match(bad.text, 'segment has unknown filter &quot;tagz&quot;');
    });
  });
});

test('an import stores the good rows and reports each bad row by line and reason', async () => {
  await withTelegram({}, async (world) => {
    await world.db.pool.query(`INSERT INTO broadcast_subscribers (chat_id, language_code, tags) VALUES (2, 'ru', ARRAY['old'])`);
    await withDashboard(world, async (server) => {
      const c = new DashboardClient(server.url);
      await c.login(ADMIN_TOKEN);
      const page = await c.get('/subscribers');
      assert.match(page.text, 'id="import-form"');
      assert.match(page.text, '/assets/subscribers.js');
      const csv = ['chat_id,language_code,tags,plan', '1,en,vip;beta,pro', '2,de,,', 'abc,en,,', '3,<script>,,', '', '4,,news,free', '5,en'].join('\n');
      const started = await upload(c, await c.csrf(), 'users.csv', csv);
      assert.is(started.status, 200);
      const { location } = JSON.parse(started.text) as { location: string };
      assert.match(location, /^\/subscribers\/imports\/[0-9a-f]{12}$/);
      assert.is(await importEnded(c, location), 'finished');

      const { rows } = await world.db.pool.query('SELECT chat_id::int AS id, language_code, tags, attributes FROM broadcast_subscribers ORDER BY chat_id');
      assert.equal(rows, [
        { id: 1, language_code: 'en', tags: ['vip', 'beta'], attributes: { plan: 'pro' } },
        { id: 2, language_code: 'de', tags: ['old'], attributes: {} },
        { id: 4, language_code: null, tags: ['news'], attributes: { plan: 'free' } },
      ]);
      const report = await c.get(location);
      assert.is(report.status, 200);
      assert.match(report.text, /data-live="imp:[0-9a-f]+:imported">3</);
      assert.match(report.text, /data-live="imp:[0-9a-f]+:inserted">2</);
      assert.match(report.text, /data-live="imp:[0-9a-f]+:rejected">3</);
      assert.match(report.text, /<td class="num">4<\/td><td class="error-text">chat_id must be/);
      assert.match(report.text, /<td class="num">5<\/td><td class="error-text">language_code must be a language tag such as en or pt-br, got string &quot;&lt;script&gt;&quot;/);
      assert.match(report.text, /<td class="num">8<\/td><td class="error-text">has 2 fields where the header has 4/);
      assert.not.match(report.text, '<script>,');
      // The counts kept from before the import are counted again.
      assert.match((await c.get('/subscribers')).text, /<dt>subscribers<\/dt><dd>3<\/dd>/);
      assert.match((await c.get('/subscribers')).text, `href="${location}"`);

      // JSON lines, and a CSV whose header has no chat_id: the file's fault, said on the page.
      const jsonl = await upload(c, await c.csrf(), 'more.jsonl', '{"chat_id": 9, "tags": ["a"]}\n[1]\n');
      const jsonlAt = (JSON.parse(jsonl.text) as { location: string }).location;
      assert.is(await importEnded(c, jsonlAt), 'finished');
      assert.match((await c.get(jsonlAt)).text, /<td class="num">2<\/td><td class="error-text">must be a JSON object/);
      const headless = await upload(c, await c.csrf(), 'bad.csv', 'id,language_code\n1,en\n');
      const headlessAt = (JSON.parse(headless.text) as { location: string }).location;
      assert.is(await importEnded(c, headlessAt), 'stopped');
      assert.match((await c.get(headlessAt)).text, 'the CSV header row has no chat_id column');
    });
  });
});

test('an import without the CSRF token, from a read-only session, as a form, too large or beside another is refused', async () => {
  await withTelegram({}, async (world) => {
    await withDashboard(world, async (server) => {
      const csv = 'chat_id\n1\n2\n';
      const reader = new DashboardClient(server.url);
      await reader.login(READ_TOKEN);
      assert.is((await upload(reader, await reader.csrf(), 'users.csv', csv)).status, 403);
      const admin = new DashboardClient(server.url);
      await admin.login(ADMIN_TOKEN);
      assert.is((await upload(admin, null, 'users.csv', csv)).status, 403);
      assert.is((await upload(admin, 'x'.repeat(32), 'users.csv', csv)).status, 403);
      assert.is((await upload(admin, await admin.csrf(), 'users.csv', csv, { 'content-type': 'multipart/form-data; boundary=x' })).status, 415);
      assert.is((await upload(admin, await admin.csrf(), 'empty.csv', '')).status, 400);

      // Refused from the declared length, before the body is read.
      const csrf = await admin.csrf();
      const tooLarge = await new Promise<{ status: number; text: string }>((resolve, reject) => {
        const req = http.request(`${server.url}/subscribers/import?name=big.csv`, {
          method: 'POST',
          headers: { cookie: admin.cookie!, 'x-csrf-token': csrf, 'x-requested-with': 'bq-dashboard', 'content-type': 'text/csv', 'content-length': MAX_UPLOAD_BYTES + 1 },
        }, (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (d: string) => (text += d)).on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        });
        req.on('error', reject);
        req.write('chat_id\n1\n');
      });
      assert.is(tooLarge.status, 413);
      assert.match(tooLarge.text, 'larger than the dashboard&#39;s 32 MB upload limit; import it with bqctl subscribers import FILE');
      assert.is((await world.db.pool.query('SELECT count(*)::int AS n FROM broadcast_subscribers')).rows[0].n, 0);

      // One import at a time: while the first waits on a lock, a second is refused.
      const locker = new pg.Client({ connectionString: world.db.url });
      await locker.connect();
      let first: string;
      try {
        await locker.query('BEGIN');
        await locker.query('LOCK TABLE broadcast_subscribers IN EXCLUSIVE MODE');
        const started = await upload(admin, csrf, 'first.csv', csv);
        assert.is(started.status, 200);
        first = (JSON.parse(started.text) as { location: string }).location;
        const second = await upload(admin, csrf, 'second.csv', csv);
        assert.is(second.status, 409);
        assert.match(second.text, 'is still running; wait for it to finish');
      } finally {
        await locker.query('COMMIT').catch(() => undefined);
        await locker.end();
      }
      assert.is(await importEnded(admin, first), 'finished');
      assert.is((await world.db.pool.query('SELECT count(*)::int AS n FROM broadcast_subscribers')).rows[0].n, 2);
    });
  });
});

test.run();
