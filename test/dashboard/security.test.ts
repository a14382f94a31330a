// The dashboard's locks, over plain HTTP: login, the session cookie's flags, CSRF on every POST,
// the read-only token, escaping, the Content-Security-Policy and the local-only mode without a token.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http from 'node:http';
import { startAdminServer, type AdminServer } from '../../src/http/admin-server.js';
import { withTelegram, jobRow, type TelegramWorld } from '../helpers/telegram.js';
import { ADMIN_TOKEN, DashboardClient, insertFinishedJob, READ_TOKEN } from './helpers.js';

async function withDashboard(world: TelegramWorld, options: Parameters<typeof startAdminServer>[1], body: (server: AdminServer) => Promise<void>) {
  const server = await startAdminServer(world.queue, { host: '127.0.0.1', port: 0, ...options });
  try {
    await body(server);
  } finally {
    await server.close();
  }
}

/** fetch() will not send a Host of our choosing; a rebinding name would. */
function statusWithHost(base: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http.get(`${base}/`, { headers: { host } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', reject);
  });
}

const tokens = { apiToken: ADMIN_TOKEN, dashboard: { readOnlyToken: READ_TOKEN } };

test('pages need a login; a wrong token is refused; the right one gives an HttpOnly SameSite=Strict cookie', async () => {
  await withTelegram({}, async (world) => {
    await withDashboard(world, tokens, async (server) => {
      const c = new DashboardClient(server.url);
      for (const path of ['/', '/jobs', '/broadcasts', '/health', '/jobs/1']) {
        const r = await c.get(path);
        assert.is(r.status, 303, path);
        assert.is(r.headers.get('location'), '/login');
      }
      assert.is((await c.request('GET', '/events/overview')).status, 401);
      const login = await c.get('/login');
      assert.is(login.status, 200);
      assert.match(login.headers.get('content-security-policy') ?? '', /default-src 'none'; script-src 'self'; style-src 'self'/);
      assert.is((await c.login('not-the-token-at-all-000000')).status, 401);
      assert.is(c.cookie, null);
      const ok = await c.login(ADMIN_TOKEN);
      assert.is(ok.status, 303);
      const cookie = ok.headers.get('set-cookie') ?? '';
      assert.match(cookie, /^bq_dashboard=[\w-]{40,}\.[\w-]{40,}; Path=\/; HttpOnly; SameSite=Strict/);
      for (const path of ['/', '/jobs', '/broadcasts', '/health']) assert.is((await c.get(path)).status, 200, path);
      // The admin API still wants its bearer token: a dashboard cookie opens nothing there.
      assert.is((await c.get('/api/admin/queue/status')).status, 401);
    });
  });
});

test('a login posted from another site is refused', async () => {
  await withTelegram({}, async (world) => {
    await withDashboard(world, tokens, async (server) => {
      const c = new DashboardClient(server.url);
      const r = await c.request('POST', '/login', { form: { token: ADMIN_TOKEN }, headers: { origin: 'https://evil.example' } });
      assert.is(r.status, 403);
      assert.is(c.cookie, null);
    });
  });
});

test('a POST without the session\'s CSRF token changes nothing; with it the job is retried', async () => {
  await withTelegram({}, async (world) => {
    const id = await insertFinishedJob(world.db, 'failed', { n: 1 }, 'boom');
    await withDashboard(world, tokens, async (server) => {
      const c = new DashboardClient(server.url);
      await c.login(ADMIN_TOKEN);
      const csrf = await c.csrf();
      assert.is((await c.post(`/jobs/${id}/retry`, null)).status, 403);
      assert.is((await c.post(`/jobs/${id}/retry`, 'x'.repeat(32))).status, 403);
      // Another session's token is no good either.
      const other = new DashboardClient(server.url);
      await other.login(ADMIN_TOKEN);
      assert.is((await c.post(`/jobs/${id}/retry`, await other.csrf())).status, 403);
      assert.is((await jobRow(world.db, id)).status, 'failed');
      const done = await c.post(`/jobs/${id}/retry`, csrf);
      assert.is(done.status, 303);
      assert.is(done.headers.get('location'), `/jobs/${id}`);
      assert.is((await jobRow(world.db, id)).status, 'pending');
      assert.match((await c.get(`/jobs/${id}`)).text, `Job ${id} retried.`);
    });
  });
});

test('the read-only token shows every page but no button, and every action is refused', async () => {
  await withTelegram({}, async (world) => {
    const id = await insertFinishedJob(world.db, 'failed', { n: 1 }, 'boom');
    const pending = await insertFinishedJob(world.db, 'pending', { n: 2 });
    await withDashboard(world, tokens, async (server) => {
      const c = new DashboardClient(server.url);
      assert.is((await c.login(READ_TOKEN)).status, 303);
      const page = await c.get(`/jobs/${id}`);
      assert.is(page.status, 200);
      assert.match(page.text, 'read-only');
      assert.not.match(page.text, `/jobs/${id}/retry`);
      const csrf = await c.csrf();
      assert.is((await c.post(`/jobs/${id}/retry`, csrf)).status, 403);
      assert.is((await c.post(`/jobs/${pending}/cancel`, csrf)).status, 403);
      assert.is((await c.post('/broadcasts/1/pause', csrf)).status, 403);
      assert.is((await jobRow(world.db, id)).status, 'failed');
      assert.is((await jobRow(world.db, pending)).status, 'pending');
    });
  });
});

test('payloads and errors are escaped; every page carries the strict Content-Security-Policy', async () => {
  await withTelegram({}, async (world) => {
    const id = await insertFinishedJob(world.db, 'failed', { text: '<script>alert(1)</script>' }, '<img src=x onerror=alert(2)>', '<b>type</b>');
    await withDashboard(world, tokens, async (server) => {
      const c = new DashboardClient(server.url);
      await c.login(ADMIN_TOKEN);
      for (const path of [`/jobs/${id}`, '/jobs', `/jobs?q=${encodeURIComponent('"><script>')}`]) {
        const r = await c.get(path);
        assert.is(r.status, 200, path);
        assert.not.match(r.text, '<script>alert', path);
        assert.not.match(r.text, '<img src=x', path);
        assert.not.match(r.text, '<b>type', path);
        assert.not.match(r.text, '"><script>', path);
        assert.match(r.headers.get('content-security-policy') ?? '', "frame-ancestors 'none'");
      }
      assert.match((await c.get(`/jobs/${id}`)).text, '&lt;img src=x onerror=alert(2)&gt;');
    });
  });
});

test('without a token: local callers only (the admin API\'s guard), and POSTs still need the CSRF token', async () => {
  await withTelegram({}, async (world) => {
    const id = await insertFinishedJob(world.db, 'failed', { n: 1 }, 'boom');
    await withDashboard(world, {}, async (server) => {
      const c = new DashboardClient(server.url);
      assert.is(await statusWithHost(server.url, 'evil.example'), 403);
      assert.is((await c.request('GET', '/', { headers: { origin: 'https://evil.example' } })).status, 403);
      assert.is((await c.request('GET', '/', { headers: { 'x-forwarded-for': '10.0.0.1' } })).status, 403);
      const home = await c.get('/');
      assert.is(home.status, 200);
      const csrf = await c.csrf();
      // A plain form post (what another page could make the browser send) is refused by the guard.
      assert.is((await c.post(`/jobs/${id}/retry`, csrf)).status, 415);
      const headers = { 'x-requested-with': 'bq-dashboard' };
      assert.is((await c.request('POST', `/jobs/${id}/retry`, { form: {}, headers })).status, 403);
      assert.is((await jobRow(world.db, id)).status, 'failed');
      const done = await c.request('POST', `/jobs/${id}/retry`, { form: { _csrf: csrf }, headers });
      // The page's script is told where to go (a followed redirect would use up the notice).
      assert.is(done.status, 200);
      assert.equal(JSON.parse(done.text), { location: `/jobs/${id}` });
      assert.is((await jobRow(world.db, id)).status, 'pending');
    });
  });
});

test('dashboard: false leaves / to the 404 it was', async () => {
  await withTelegram({}, async (world) => {
    await withDashboard(world, { apiToken: ADMIN_TOKEN, dashboard: false }, async (server) => {
      const r = await new DashboardClient(server.url).get('/');
      assert.is(r.status, 404);
      assert.match(r.text, 'dashboard is turned off');
    });
  });
});

test.run();
