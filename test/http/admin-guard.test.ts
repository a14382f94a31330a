// Closed by default: an embedded admin handler asks for a token unless its caller opted out, and a
// tokenless one answers only local programs — not a web page's form, not a rebinding DNS name.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http from 'node:http';
import os from 'node:os';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { AdminHandler } from '../../src/http/admin.js';
import { startAdminServer } from '../../src/http/admin-server.js';
import { insertJob, withTelegram, type TelegramWorld } from '../helpers/telegram.js';

const TOKEN = 'guard-test-token-0123456789abcdef';

interface Raw {
  status: number;
  body: any;
}

/** One request with exactly these headers (node:http, so Host and Origin are ours to set). */
async function raw(target: { host: string; port: number }, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Raw> {
  const req = http.request({ host: target.host, port: target.port, method, path, headers, setHost: !('host' in headers) });
  req.end(body);
  const [res] = (await once(req, 'response')) as [http.IncomingMessage];
  let text = '';
  for await (const chunk of res) text += chunk;
  return { status: res.statusCode!, body: text && (res.headers['content-type'] ?? '').includes('json') ? JSON.parse(text) : text };
}

/** Mounts the handler on a plain node:http server at /admin, as a bot with a webhook server would. */
async function mounted(handler: AdminHandler, host = '127.0.0.1'): Promise<{ port: number; close(): void }> {
  const server = http.createServer((req, res) => {
    req.url = (req.url ?? '/').slice('/admin'.length) || '/';
    handler(req, res);
  });
  server.listen(0, host);
  await once(server, 'listening');
  return { port: (server.address() as AddressInfo).port, close: () => (server.close(), server.closeAllConnections()) };
}

/** A cancelled job: retry answers 200 for it. */
async function cancelledJob(world: TelegramWorld): Promise<number> {
  const id = await insertJob(world.db, 'nobody-handles-this', {});
  await world.db.pool.query(`UPDATE broadcast_queue_jobs SET status = 'cancelled', finished_at = now() WHERE job_id = $1`, [id]);
  return id;
}

test('queue.adminHandler() with neither a token nor an explicit opt-out cannot be created', async () => {
  await withTelegram({}, async ({ queue }) => {
    assert.throws(() => queue.adminHandler(), /needs an apiToken .* or allowUnauthenticated: true/);
    assert.throws(() => queue.adminHandler({ apiToken: ' ' }), /apiToken must be a non-empty string/);
  });
});

test('an embedded handler with a token: POST /jobs/:id/retry without it is 401, with it 200', async () => {
  await withTelegram({}, async (world) => {
    const server = await mounted(world.queue.adminHandler({ apiToken: TOKEN }));
    try {
      const at = { host: '127.0.0.1', port: server.port };
      const id = await cancelledJob(world);
      const json = { 'content-type': 'application/json' };
      assert.is((await raw(at, 'POST', `/admin/jobs/${id}/retry`, json)).status, 401);
      assert.is((await raw(at, 'POST', `/admin/jobs/${id}/retry`, { ...json, authorization: 'Bearer wrong' })).status, 401);
      assert.is((await raw(at, 'GET', '/admin/status')).status, 401);
      const ok = await raw(at, 'POST', `/admin/jobs/${id}/retry`, { authorization: `Bearer ${TOKEN}` });
      assert.is(ok.status, 200, JSON.stringify(ok.body));
      assert.is(ok.body.outcome, 'retried');
      assert.is((await raw(at, 'GET', '/admin/health')).status, 200, 'with a token, /health stays open to probes');
    } finally {
      server.close();
    }
  });
});

test('without a token: a cross-site form POST and a rebinding Host are refused; a local JSON POST goes through', async () => {
  await withTelegram({}, async (world) => {
    const server = await mounted(world.queue.adminHandler({ allowUnauthenticated: true }));
    const admin = await startAdminServer(world.queue, { host: '127.0.0.1', port: 0 });
    try {
      const at = { host: '127.0.0.1', port: server.port };
      const local = `127.0.0.1:${server.port}`;
      const id = await cancelledJob(world);
      const refused: [string, string, Record<string, string>, number][] = [
        // What a page on evil.example can make a browser send: a form POST, text/plain, its Origin.
        ['POST', `/admin/jobs/${id}/retry`, { origin: 'http://evil.example', 'content-type': 'text/plain' }, 403],
        ['POST', `/admin/jobs/${id}/retry`, { origin: 'http://evil.example', 'content-type': 'application/json' }, 403],
        ['POST', `/admin/jobs/${id}/retry`, { origin: 'null', 'content-type': 'application/json' }, 403],
        ['POST', `/admin/jobs/${id}/retry`, { 'sec-fetch-site': 'cross-site', 'content-type': 'application/json' }, 403],
        // The same without an Origin (older browsers, a form from a file): the content type alone stops it.
        ['POST', `/admin/jobs/${id}/retry`, { 'content-type': 'text/plain' }, 415],
        ['POST', `/admin/jobs/${id}/retry`, { 'content-type': 'application/x-www-form-urlencoded' }, 415],
        ['POST', `/admin/jobs/${id}/retry`, {}, 415],
        // DNS rebinding: evil.example resolves to 127.0.0.1 and the page reads the answer.
        ['GET', '/admin/status', { host: 'evil.example' }, 403],
        ['GET', '/admin/health', { host: `evil.example:${server.port}` }, 403],
        ['POST', `/admin/jobs/${id}/retry`, { host: 'evil.example', 'content-type': 'application/json' }, 403],
        // A proxy on this machine would make every caller look local.
        ['GET', '/admin/status', { 'x-forwarded-for': '203.0.113.9' }, 403],
      ];
      for (const [method, path, headers, status] of refused) {
        const r = await raw(at, method, path, headers);
        assert.is(r.status, status, `${method} ${path} ${JSON.stringify(headers)}: ${JSON.stringify(r.body)}`);
        assert.match(r.body.error, /token|Content-Type/);
      }
      assert.is((await world.db.pool.query('SELECT status FROM broadcast_queue_jobs WHERE job_id = $1', [id])).rows[0].status, 'cancelled', 'nothing refused changed the job');

      assert.is((await raw(at, 'GET', '/admin/status')).status, 200, 'curl on this machine');
      assert.is((await raw(at, 'GET', '/admin/status', { host: `localhost:${server.port}`, origin: `http://localhost:${server.port}` })).status, 200, 'a page served by the handler itself');
      const retried = await raw(at, 'POST', `/admin/jobs/${id}/retry`, { host: local, origin: `http://${local}`, 'content-type': 'application/json; charset=utf-8' });
      assert.is(retried.status, 200, JSON.stringify(retried.body));
      await world.db.pool.query(`UPDATE broadcast_queue_jobs SET status = 'cancelled' WHERE job_id = $1`, [id]);
      assert.is((await raw(at, 'POST', `/admin/jobs/${id}/retry`, { 'x-requested-with': 'bqctl' })).status, 200, 'a custom header is as good as JSON');

      // The standalone server without a token: /metrics is guarded the same way.
      const standalone = { host: '127.0.0.1', port: Number(new URL(admin.url).port) };
      assert.is((await raw(standalone, 'GET', '/metrics', { host: 'evil.example' })).status, 403);
      assert.is((await raw(standalone, 'GET', '/api/admin/queue/status', { host: 'evil.example' })).status, 403);
      assert.is((await raw(standalone, 'POST', '/api/admin/queue/broadcasts/1/cancel', { origin: 'http://evil.example', 'content-type': 'text/plain' })).status, 403);
      assert.is((await raw(standalone, 'GET', '/metrics')).status, 200);
    } finally {
      server.close();
      await admin.close();
    }
  });
});

test('without a token, a caller on another machine is refused even when the handler listens there', async () => {
  const address = Object.values(os.networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
  assert.ok(address, 'this test needs a non-loopback IPv4 address on the machine');
  await withTelegram({}, async (world) => {
    const server = await mounted(world.queue.adminHandler({ allowUnauthenticated: true }), '0.0.0.0');
    try {
      const r = await raw({ host: address!, port: server.port }, 'GET', '/admin/status', { host: `127.0.0.1:${server.port}` });
      assert.is(r.status, 403);
      assert.match(r.body.error, /answers only callers on this machine/);
    } finally {
      server.close();
    }
  });
});

test.run();
