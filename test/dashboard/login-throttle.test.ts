// Wrong tokens at the login page: after ten in a minute from one address, that address gets 429
// (even with the right token) until its minute is over; other addresses are not held back.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http from 'node:http';
import { startAdminServer } from '../../src/http/admin-server.js';
import { LoginThrottle, MAX_FAILURES } from '../../src/http/dashboard/login-throttle.js';
import { withTelegram } from '../helpers/telegram.js';
import { ADMIN_TOKEN, DashboardClient } from './helpers.js';

/** A login POST sent from `localAddress` (any 127.x address is this machine's loopback). */
function loginFrom(base: string, localAddress: string, token: string): Promise<{ status: number; retryAfter: string | undefined }> {
  return new Promise((resolve, reject) => {
    const body = new URLSearchParams({ token }).toString();
    const req = http.request(`${base}/login`, { method: 'POST', localAddress, headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] });
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('ten wrong tokens a minute from one address, then 429 even for the right one; others still log in', async () => {
  await withTelegram({}, async (world) => {
    const server = await startAdminServer(world.queue, { host: '127.0.0.1', port: 0, apiToken: ADMIN_TOKEN });
    try {
      for (let i = 0; i < MAX_FAILURES; i++) assert.is((await loginFrom(server.url, '127.0.0.1', `wrong-token-${i}-0000000000`)).status, 401, `attempt ${i + 1}`);
      const held = await loginFrom(server.url, '127.0.0.1', ADMIN_TOKEN);
      assert.is(held.status, 429);
      assert.ok(Number(held.retryAfter) >= 1 && Number(held.retryAfter) <= 60, held.retryAfter);
      assert.is((await new DashboardClient(server.url).login(ADMIN_TOKEN)).status, 429);
      assert.is((await loginFrom(server.url, '127.0.0.2', ADMIN_TOKEN)).status, 303);
    } finally {
      await server.close();
    }
  });
});

test('the minute ends; memory stays bounded however many addresses try', () => {
  let now = 1_000_000;
  const throttle = new LoginThrottle(() => now);
  for (let i = 0; i < MAX_FAILURES - 1; i++) throttle.failed('a');
  assert.is(throttle.retryAfter('a'), 0);
  throttle.failed('a');
  assert.is(throttle.retryAfter('a'), 60);
  now += 59_500;
  assert.is(throttle.retryAfter('a'), 1);
  now += 500;
  assert.is(throttle.retryAfter('a'), 0, 'a new minute');
  throttle.failed('a');
  assert.is(throttle.retryAfter('a'), 0);
  for (let i = 0; i < 25_000; i++) throttle.failed(`10.0.${i >> 8}.${i & 255}`);
  assert.ok(throttle.size <= 10_000, String(throttle.size));
});

test.run();
