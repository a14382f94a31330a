// The overview's rate limit: how many 429 answers this daemon got, in the last hour and since start.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EventEmitter } from 'node:events';
import { startAdminServer } from '../../src/http/admin-server.js';
import { RateLimitedCounter } from '../../src/http/dashboard/rate-limited.js';
import type { TelegramView } from '../../src/http/queue-access.js';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import { insertJob, withTelegram } from '../helpers/telegram.js';
import { waitForEvent } from '../helpers/wait.js';
import { ADMIN_TOKEN, DashboardClient } from './helpers.js';

test('the 429 count keeps the last hour by minute and the total since start', () => {
  let now = Date.UTC(2026, 11, 4, 12, 0, 30);
  const events = new EventEmitter();
  const counter = new RateLimitedCounter(Object.assign(events, { botId: 1, halted: null }) as unknown as TelegramView, () => now);
  for (let i = 0; i < 3; i++) events.emit('rate-limited', { retryAfterMs: 2_000 });
  now += 30 * 60_000;
  events.emit('rate-limited', { retryAfterMs: 5_000 });
  assert.equal([counter.counts().lastHour, counter.counts().sinceStart, counter.counts().pausedSecondsLastHour], [4, 4, 11]);
  now += 31 * 60_000; // the first three are over an hour old now
  assert.equal([counter.counts().lastHour, counter.counts().sinceStart, counter.counts().pausedSecondsLastHour], [1, 4, 5]);
  now += 2 * 60 * 60_000;
  events.emit('rate-limited', { retryAfterMs: 1_000 });
  assert.equal([counter.counts().lastHour, counter.counts().sinceStart], [1, 5]);
  assert.is(counter.counts().last!.getTime(), now);
});

test('a 429 from Telegram shows on the overview and in its live stream', async () => {
  await withTelegram({}, async ({ db, api, queue }) => {
    const server = await startAdminServer(queue, { host: '127.0.0.1', port: 0, apiToken: ADMIN_TOKEN });
    try {
      const c = new DashboardClient(server.url);
      await c.login(ADMIN_TOKEN);
      assert.match((await c.get('/')).text, /429 answers to this daemon: <strong data-live="rl:hour">0<\/strong>/);
      api.setFaults({ storm: true });
      const limited = waitForEvent(queue.telegram!, 'rate-limited', () => true, 30_000);
      const snoozed = waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobType === 'send', 30_000);
      await insertJob(db, 'send', { chat_id: 7, message: { text: 'hello' } });
      await limited;
      await snoozed;
      api.setFaults({ storm: false });
      assert.match((await c.get('/')).text, /429 answers to this daemon: <strong data-live="rl:hour">1<\/strong> in the last hour/);
      // The live stream's first update carries the same count.
      const res = await fetch(`${server.url}/events/overview`, { headers: { cookie: c.cookie! } });
      const reader = res.body!.getReader();
      let text = '';
      while (!text.includes('event: update')) text += new TextDecoder().decode((await reader.read()).value);
      while (!/event: update\ndata: .*\n\n/.test(text)) text += new TextDecoder().decode((await reader.read()).value);
      await reader.cancel();
      const data = JSON.parse(/event: update\ndata: (.*)\n\n/.exec(text)![1]!);
      assert.is(data.values['rl:hour'], '1');
      assert.is(data.values['rl:total'], '1');
    } finally {
      await server.close();
    }
  });
});

test.run();
