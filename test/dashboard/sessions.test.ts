// Sessions are signed cookies, not server memory: a session from one dashboard (one daemon, or
// before a restart) is accepted by another with the same tokens, and refused after a token changes,
// when tampered with, once expired, 7 days after its login however often it was renewed, and
// when it comes from before sessions carried their login time.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHmac, scryptSync } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { startAdminServer, type AdminServer } from '../../src/http/admin-server.js';
import { MAX_SESSION_MS, SessionKeeper } from '../../src/http/dashboard/session.js';
import { withTelegram, jobRow, type TelegramWorld } from '../helpers/telegram.js';
import { ADMIN_TOKEN, DashboardClient, insertFinishedJob, READ_TOKEN } from './helpers.js';

async function withServers(world: TelegramWorld, tokens: { apiToken: string; readOnlyToken?: string }[], body: (servers: AdminServer[]) => Promise<void>) {
  const servers: AdminServer[] = [];
  try {
    for (const t of tokens) servers.push(await startAdminServer(world.queue, { host: '127.0.0.1', port: 0, apiToken: t.apiToken, dashboard: { readOnlyToken: t.readOnlyToken } }));
    await body(servers);
  } finally {
    for (const s of servers) await s.close();
  }
}

/** The same cookies, sent to another server. */
function moved(c: DashboardClient, base: string): DashboardClient {
  const other = new DashboardClient(base);
  for (const [k, v] of c.cookies) other.cookies.set(k, v);
  return other;
}

test('a session from one dashboard works on a second with the same tokens, CSRF token and all; not on one whose token changed', async () => {
  await withTelegram({}, async (world) => {
    const id = await insertFinishedJob(world.db, 'failed', { n: 1 }, 'boom');
    await withServers(world, [{ apiToken: ADMIN_TOKEN, readOnlyToken: READ_TOKEN }, { apiToken: ADMIN_TOKEN, readOnlyToken: READ_TOKEN }, { apiToken: `${ADMIN_TOKEN}-rotated`, readOnlyToken: READ_TOKEN }], async ([first, second, rotated]) => {
      const c = new DashboardClient(first!.url);
      assert.is((await c.login(ADMIN_TOKEN)).status, 303);
      const csrf = await c.csrf();
      const there = moved(c, second!.url);
      assert.is((await there.get('/jobs')).status, 200);
      const done = await there.post(`/jobs/${id}/retry`, csrf);
      assert.is(done.status, 303);
      assert.is((await jobRow(world.db, id)).status, 'pending');
      // The notice set by the second is shown (once) by the first.
      assert.match((await moved(there, first!.url).get(`/jobs/${id}`)).text, `Job ${id} retried.`);
      const afterRotation = moved(c, rotated!.url);
      const refused = await afterRotation.get('/jobs');
      assert.is(refused.status, 303);
      assert.is(refused.headers.get('location'), '/login');
      assert.is((await afterRotation.post(`/jobs/${id}/cancel`, csrf)).status, 401);
    });
  });
});

test('a tampered cookie is refused: a read-only session made admin, a forged signature', async () => {
  await withTelegram({}, async (world) => {
    const id = await insertFinishedJob(world.db, 'failed', { n: 1 }, 'boom');
    await withServers(world, [{ apiToken: ADMIN_TOKEN, readOnlyToken: READ_TOKEN }], async ([server]) => {
      const c = new DashboardClient(server!.url);
      await c.login(READ_TOKEN);
      const csrf = await c.csrf();
      const [body, signature] = c.cookies.get('bq_dashboard')!.split('.');
      const claims = JSON.parse(Buffer.from(body!, 'base64url').toString());
      assert.is(claims.r, 'read');
      assert.not.match(JSON.stringify(claims), READ_TOKEN, 'the cookie does not carry the token');
      assert.not.match(c.cookies.get('bq_dashboard')!, csrf, 'nor the CSRF token');
      const promoted = Buffer.from(JSON.stringify({ ...claims, r: 'admin' })).toString('base64url');
      c.cookies.set('bq_dashboard', `${promoted}.${signature}`);
      assert.is((await c.get('/jobs')).status, 303);
      assert.is((await c.post(`/jobs/${id}/retry`, csrf)).status, 401);
      c.cookies.set('bq_dashboard', `${body}.${'A'.repeat(signature!.length)}`);
      assert.is((await c.get('/jobs')).status, 303);
      assert.is((await jobRow(world.db, id)).status, 'failed');
    });
  });
});

test('a session expires after 12 idle hours; a page within them renews it, keeping its CSRF token', () => {
  let now = Date.UTC(2026, 11, 4, 9);
  const keeper = new SessionKeeper([ADMIN_TOKEN, undefined], { path: '/', secure: true }, () => now);
  const issued = keeper.issue('admin');
  assert.match(issued.setCookie, /; HttpOnly; SameSite=Strict; Max-Age=43200; Secure$/);
  const req = (setCookie: string) => ({ headers: { cookie: setCookie.split(';')[0] } }) as IncomingMessage;
  now += 60_000;
  assert.equal(keeper.fromRequest(req(issued.setCookie)), { session: issued.session });
  now += 11 * 60 * 60_000;
  const renewed = keeper.fromRequest(req(issued.setCookie))!;
  assert.is(renewed.session.csrf, issued.session.csrf);
  assert.ok(renewed.setCookie);
  now += 2 * 60 * 60_000; // 13 h after the login, 2 h after the renewal
  assert.is(keeper.fromRequest(req(issued.setCookie)), null, 'the first cookie has expired');
  assert.is(keeper.fromRequest(req(renewed.setCookie!))!.session.role, 'admin');
  // Another key (another token) does not accept it.
  assert.is(new SessionKeeper([`${ADMIN_TOKEN}x`, undefined], { path: '/', secure: true }, () => now).fromRequest(req(renewed.setCookie!)), null);
});

test('a session renewed every few hours still ends 7 days after its login', () => {
  const login = Date.UTC(2026, 11, 4, 9);
  let now = login;
  const keeper = new SessionKeeper([ADMIN_TOKEN, undefined], { path: '/', secure: false }, () => now);
  const req = (setCookie: string) => ({ headers: { cookie: setCookie.split(';')[0] } }) as IncomingMessage;
  let cookie = keeper.issue('admin').setCookie;
  let renewedAt = login;
  assert.is(MAX_SESSION_MS, 7 * 24 * 60 * 60_000);
  // Used every 11 hours, as a copied cookie would be to keep it alive: renewed each time until 165 h.
  while (now + 11 * 60 * 60_000 < login + MAX_SESSION_MS) {
    now += 11 * 60 * 60_000;
    const seen = keeper.fromRequest(req(cookie));
    assert.ok(seen, `still valid ${(now - login) / 3_600_000} h after the login`);
    assert.ok(seen.setCookie, 'renewed');
    [cookie, renewedAt] = [seen.setCookie, now];
  }
  // The last renewal stopped at the cap: its cookie's Max-Age ends at 7 days, and later pages renew nothing.
  assert.is(renewedAt, login + 165 * 60 * 60_000);
  assert.match(cookie, /Max-Age=10800$/);
  now = login + MAX_SESSION_MS - 60_000;
  const last = keeper.fromRequest(req(cookie))!;
  assert.is(last.session.expiresAt, login + MAX_SESSION_MS);
  assert.is(last.setCookie, undefined);
  now = login + MAX_SESSION_MS;
  assert.is(keeper.fromRequest(req(cookie)), null, 'refused at 7 days, however recently renewed');
  // A new login starts a new 7 days.
  const again = keeper.issue('admin');
  now += 60 * 60_000;
  assert.is(keeper.fromRequest(req(again.setCookie))!.session.role, 'admin');
});

test('a cookie from before sessions carried their login time sends the browser to the login page', async () => {
  await withTelegram({}, async (world) => {
    const id = await insertFinishedJob(world.db, 'failed', { n: 1 }, 'boom');
    await withServers(world, [{ apiToken: ADMIN_TOKEN }], async ([server]) => {
      // Signed as the previous version did: same key, claims without "i".
      const key = scryptSync(JSON.stringify([ADMIN_TOKEN, null]), 'bq-dashboard-session-v1', 32);
      const body = Buffer.from(JSON.stringify({ r: 'admin', e: Date.now() + 60 * 60_000, n: 'old-format-nonce' })).toString('base64url');
      const signature = createHmac('sha256', key).update(`session\0${body}`).digest('base64url');
      const c = new DashboardClient(server!.url);
      c.cookies.set('bq_dashboard', `${body}.${signature}`);
      const page = await c.get('/jobs');
      assert.is(page.status, 303);
      assert.is(page.headers.get('location'), '/login');
      const csrf = createHmac('sha256', key).update('csrf\0old-format-nonce').digest('base64url');
      assert.is((await c.post(`/jobs/${id}/retry`, csrf)).status, 401);
      assert.is((await jobRow(world.db, id)).status, 'failed');
      assert.is((await c.get('/login')).status, 200);
    });
  });
});

test('a short admin token beside a read-only token is refused when the dashboard is made', async () => {
  await withTelegram({}, async (world) => {
    const short = 'a'.repeat(23);
    const refused = await startAdminServer(world.queue, { host: '127.0.0.1', port: 0, apiToken: short, dashboard: { readOnlyToken: READ_TOKEN } }).then(
      async (server) => { await server.close(); return null; },
      (error: Error) => error.message,
    );
    assert.match(refused ?? 'started', 'apiToken must be at least 24 characters when readOnlyToken is set');
    assert.not.match(refused!, short);
    const alone = await startAdminServer(world.queue, { host: '127.0.0.1', port: 0, apiToken: short, dashboard: {} });
    await alone.close();
  });
});

test.run();
