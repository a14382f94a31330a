// The Compose page over plain HTTP: its POST is locked like every other (CSRF token, admin
// session), the server checks what the browser previews (formatting, buttons, audience, the send
// time) and saves nothing when something is wrong, the live count applies the frequency cap, a
// schedule queues its job for that time, and what the operator typed is escaped when shown again.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startAdminServer, type AdminServer } from '../../src/http/admin-server.js';
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

async function loggedIn(server: AdminServer, token = ADMIN_TOKEN): Promise<[DashboardClient, string]> {
  const c = new DashboardClient(server.url);
  await c.login(token);
  return [c, await c.csrf()];
}

const SCRIPT = { 'x-requested-with': 'bq-dashboard' };
const good = { 'v0.text': 'Hello <b>all</b>', 'v0.parse_mode': 'HTML', tags_any: 'vip' };
const broadcastsMade = async (world: TelegramWorld) => (await world.db.pool.query('SELECT count(*)::int AS n FROM broadcasts')).rows[0].n as number;

test('POST /compose without the CSRF token, or from a read-only session, saves nothing', async () => {
  await withTelegram({}, async (world) => {
    await withDashboard(world, async (server) => {
      const stranger = new DashboardClient(server.url);
      assert.is((await stranger.get('/compose')).status, 303, 'the page needs a login');
      assert.is((await stranger.request('POST', '/compose/check', { form: { tags_any: 'vip' } })).status, 401, 'so does the count');
      const [c] = await loggedIn(server);
      assert.is((await c.request('POST', '/compose', { form: { ...good, intent: 'send' } })).status, 403);
      assert.is((await c.request('POST', '/compose', { form: { ...good, intent: 'send', _csrf: 'x'.repeat(32) } })).status, 403);
      const [reader, readerCsrf] = await loggedIn(server, READ_TOKEN);
      assert.is((await reader.get('/compose')).status, 200, 'a read-only session sees the page');
      assert.is((await reader.request('POST', '/compose', { form: { ...good, intent: 'send', _csrf: readerCsrf } })).status, 403);
      assert.is((await reader.request('POST', '/compose', { form: { ...good, intent: 'test', test_chat_id: '5', _csrf: readerCsrf } })).status, 403);
      assert.is(await broadcastsMade(world), 0);
      assert.is((await world.db.pool.query('SELECT count(*)::int AS n FROM broadcast_queue_jobs')).rows[0].n, 0);
    });
  });
});

test('the server refuses what Telegram or the daemon would, field by field, and saves nothing', async () => {
  await withTelegram({}, async (world) => {
    await withDashboard(world, async (server) => {
      const [c, csrf] = await loggedIn(server);
      const post = async (form: Record<string, string>) => {
        const r = await c.request('POST', '/compose', { form: { _csrf: csrf, intent: 'send', ...form }, headers: SCRIPT });
        assert.is(r.status, 422, r.text);
        return JSON.parse(r.text).errors as Record<string, string>;
      };
      assert.match((await post({ 'v0.text': 'Sale ends today.', 'v0.parse_mode': 'MarkdownV2' }))['v0.text']!, "Character '.' is reserved");
      assert.match((await post({ 'v0.text': 'a <script>x</script>', 'v0.parse_mode': 'HTML' }))['v0.text']!, 'Unsupported start tag "script"');
      assert.match((await post({ 'v0.text': ' ', 'v0.parse_mode': '' }))['v0.text']!, 'empty');
      assert.match((await post({ 'v0.text': 'x'.repeat(4097), 'v0.parse_mode': '' }))['v0.text']!, '4096');
      assert.match((await post({ ...good, 'v0.btn_text': 'Go', 'v0.btn_target': 'javascript:alert(1)' }))['v0.text']!, 'https://');
      assert.match((await post({ ...good, 'v0.btn_text': '', 'v0.btn_target': 'https://example.com' }))['v0.text']!, 'no label');
      assert.match((await post({ ...good, chat_ids: '1, 2' }))['audience.chat_ids']!, 'cannot be combined');
      assert.match((await post({ ...good, tags_any: '', chat_ids: '1, two' }))['audience.chat_ids']!, 'whole number');
      assert.match((await post({ ...good, active_within_days: '-3' }))['audience.active_within_days']!, 'positive');
      // Assigned as-is, "__proto__" would set the object's prototype and the plan filter beside it would be all that is left.
      assert.match((await post({ ...good, attributes: 'plan=pro\n__proto__=x' }))['audience.attributes']!, '"__proto__" cannot be an attribute name');
      assert.match((await post({ ...good, frequency_cap: '0' }))['frequency_cap']!, 'from 1');
      assert.match((await post({ ...good, intent: 'schedule' }))['send_at']!, 'time to send at');
      assert.match((await post({ ...good, intent: 'test' }))['test_chat_id']!, 'chat to send the test to');
      const variants = await post({ ...good, 'v1.text': 'Hi', 'v1.parse_mode': '', 'v0.name': 'a', 'v0.weight': '1', 'v1.name': 'a', 'v1.weight': '0' });
      assert.match(variants['v1.weight']!, 'whole number');
      assert.is(await broadcastsMade(world), 0);
      // A whole 4,096-character message in Cyrillic is some 24 KB form-encoded: more than the
      // dashboard's other forms may send, and still accepted here.
      const long = 'я'.repeat(4096);
      const saved = await c.request('POST', '/compose', { form: { _csrf: csrf, intent: 'draft', 'v0.text': long, 'v0.parse_mode': '' }, headers: SCRIPT });
      assert.is(saved.status, 200, saved.text);
      assert.is((await world.db.pool.query('SELECT message FROM broadcasts')).rows[0].message.text, long);
    });
  });
});

test('the live count applies the frequency cap; a schedule queues the job for that time', async () => {
  await withTelegram({}, async (world) => {
    const pool = world.db.pool;
    await pool.query(`INSERT INTO broadcast_subscribers (chat_id, tags, opted_out, unreachable_reason)
                      SELECT g, ARRAY['vip'], g = 4, CASE WHEN g = 3 THEN 'blocked' END FROM generate_series(1, 5) g`);
    const { rows } = await pool.query(`INSERT INTO broadcasts (message, audience, status) VALUES ('{"text": "x"}', '{"chat_ids": [2]}', 'completed') RETURNING broadcast_id`);
    await pool.query(`INSERT INTO broadcast_deliveries (broadcast_id, chat_id, status, sent_at) VALUES ($1, 2, 'sent', now())`, [rows[0].broadcast_id]);
    await withDashboard(world, async (server) => {
      const [c, csrf] = await loggedIn(server);
      const check = async (form: Record<string, string>) => JSON.parse((await c.request('POST', '/compose/check', { form: { ...form, _csrf: csrf } })).text);
      assert.equal((await check(good)).count, { total: 5, reachable: 3, opted_out: 1, unreachable: 1 });
      assert.equal((await check({ ...good, frequency_cap: '1' })).count, { total: 5, reachable: 2, opted_out: 1, unreachable: 1, over_frequency_cap: 1 });
      const bad = await check({ ...good, languages: ',' });
      assert.is(bad.count, null);
      assert.ok(bad.errors['audience.languages']);

      // A plain form (no script) is answered with a redirect to the saved broadcast.
      const at = new Date(Date.now() + 3_600_000);
      const local = at.toISOString().slice(0, 16);
      const r = await c.request('POST', '/compose', { form: { ...good, title: 'later', frequency_cap: '1', send_at: local, intent: 'schedule', _csrf: csrf } });
      assert.is(r.status, 303);
      const id = Number(/\/broadcasts\/(\d+)$/.exec(r.headers.get('location') ?? '')![1]);
      const b = (await pool.query('SELECT title, status, frequency_cap FROM broadcasts WHERE broadcast_id = $1', [id])).rows[0];
      assert.equal({ title: b.title, status: b.status, cap: b.frequency_cap }, { title: 'later', status: 'queued', cap: 1 });
      const job = (await pool.query(`SELECT status, run_at FROM broadcast_queue_jobs WHERE job_type = 'broadcast' AND payload->>'broadcast_id' = $1`, [String(id)])).rows[0];
      assert.is(job.status, 'pending');
      assert.is(job.run_at.toISOString().slice(0, 16), local);
      assert.match((await c.get(`/broadcasts/${id}`)).text, `Broadcast ${id} is scheduled for ${local.replace('T', ' ')}`);
    });
  });
});

test('what the operator typed is escaped when the form comes back with its errors', async () => {
  await withTelegram({}, async (world) => {
    await withDashboard(world, async (server) => {
      const [c, csrf] = await loggedIn(server);
      const r = await c.request('POST', '/compose', { form: { 'v0.text': '</textarea><script>alert(1)</script>', 'v0.parse_mode': 'HTML', title: '"><img src=x onerror=alert(2)>', intent: 'draft', _csrf: csrf } });
      assert.is(r.status, 422);
      assert.not.match(r.text, '<script>alert');
      assert.not.match(r.text, '<img src=x');
      assert.match(r.text, '&lt;/textarea&gt;&lt;script&gt;alert(1)&lt;/script&gt;</textarea>');
      assert.match(r.text, 'Unexpected end tag');
      assert.match(r.headers.get('content-security-policy') ?? '', "script-src 'self'");
      assert.is(await broadcastsMade(world), 0);
    });
  });
});

test.run();
