// The 'send' job: what it does with a call that shutdown cut off, and with a slot it woke too late for.
import { EventEmitter } from 'node:events';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SendJob } from '../../src/jobs/send-job.js';
import { TelegramSender } from '../../src/telegram/sender.js';
import { silentLogger } from '../../src/log.js';
import { FakeBotApi } from '../../src/testing/index.js';
import { SlotShare } from '../../src/telegram/slot-share.js';
import { watchJobs } from '../helpers/wait.js';
import { createTestDatabase } from '../helpers/db.js';
import { RateLimiter } from '../../src/telegram/rate-limiter.js';
import { sleep, type Sleep } from '../../src/time.js';
import { TEST_TOKEN, insertJob, jobRow, range, withTelegram } from '../helpers/telegram.js';

test('a send cut off mid-call by shutdown fails as unknown instead of going back to the queue', async () => {
  await withTelegram({ queue: { shutdownTimeoutMs: 200 } }, async ({ db, api, queue }) => {
    api.setFaults({ hangRate: 1 });
    const onTheWire = api.waitFor('call', (c) => c.method === 'sendMessage');
    const jobId = await insertJob(db, 'send', { chat_id: 42, message: { text: 'maybe delivered' } });
    await onTheWire;
    await queue.stop();
    const row = await jobRow(db, jobId);
    assert.is(row.status, 'failed', 'handed back, the next daemon would send it again');
    assert.match(row.last_error, /outcome unknown/);
  });
});

test('a send job whose process stalled past its slot takes a new slot instead of sending late', async () => {
  // chaos load / bench: with several daemons, a daemon that woke late sent on top of the slots the
  // shared timeline had given to the others, and the stand-in saw more than the limit in a second.
  const api = new FakeBotApi({ token: TEST_TOKEN });
  const apiRoot = await api.start();
  try {
    const reserved: number[] = [];
    const stalled = Date.now() - 1_000; // the slot passed a second ago while the process was busy
    const limiter = {
      share: new SlotShare(),
      pausedUntil: 0,
      // A slot missed by more than 10 ms is not used.
      reserveForChat: async () => ({ slot: stalled, reservedUntil: 'stalled', chatAllowedAt: 0 }),
      // Other sends were reserved after the missed slot, far ahead: nothing may leave at once.
      catchUp: async () => ({ slots: [], startFrom: [], reservedUntil: 'theirs' }),
      reserve: async () => {
        reserved.push(Date.now());
        return { slots: [Date.now()], reservedUntil: 'fresh' };
      },
      waitForSlot: async () => true,
      startNow: () => true,
    };
    const sender = new TelegramSender({ token: TEST_TOKEN, apiRoot });
    const job = new SendJob(null as never, sender, limiter as never, { rateLimit: 1000, paidRateLimit: 1000, atLeastOnce: false }, new EventEmitter());
    const ctx = { signal: new AbortController().signal, stopping: new AbortController().signal, log: silentLogger() };
    const result = await job.run({ jobId: 1, attempt: 1, payload: { chat_id: 7, message: { text: 'hi' } } } as never, ctx);
    assert.is((result as { chat_id: number }).chat_id, 7);
    assert.is(reserved.length, 1, 'a fresh slot was reserved for the late send');
    assert.is(api.delivered.length, 1);
  } finally {
    await api.stop();
  }
});

test('send jobs of a daemon whose timers fire late and of a quiet one keep the shared timeline near now', async () => {
  // chaos load --stress, after the broadcasts: send jobs waited 0.5-2 s for slots with nothing else
  // sending. A late daemon reserved each send with a "late allowance" that pushed the timeline
  // that far ahead; the quiet daemon's next reservation started behind it, the late one's next
  // packed behind that, and so on: every pair of sends moved the timeline another allowance out.
  const db = await createTestDatabase();
  const api = new FakeBotApi({ token: TEST_TOKEN });
  const apiRoot = await api.start();
  try {
    const sender = new TelegramSender({ token: TEST_TOKEN, apiRoot });
    const late: Sleep = (ms, signal) => sleep(ms + 100, signal); // every wait comes back 100 ms late
    const settings = { rateLimit: 1000, paidRateLimit: 1000, atLeastOnce: false };
    const lateJob = new SendJob(db.pool, sender, new RateLimiter(db.pool, 42, silentLogger(), late), settings, new EventEmitter());
    const quietJob = new SendJob(db.pool, sender, new RateLimiter(db.pool, 42, silentLogger()), settings, new EventEmitter());
    const ctx = { signal: new AbortController().signal, stopping: new AbortController().signal, log: silentLogger() };
    let chat = 0;
    const send = (job: SendJob) => job.run({ jobId: ++chat, attempt: 1, priority: 0, payload: { chat_id: chat, message: { text: 'hi' } } } as never, ctx);
    // The late daemon's waits have come back late for a while: sixteen sends at once, most waiting for a slot.
    await Promise.all(Array.from({ length: 16 }, () => send(lateJob)));
    // Then both daemons' send jobs at once, their reservations interleaved, while the timeline is watched.
    let furthest = 0;
    let sending = true;
    const watch = (async () => {
      while (sending) {
        const { rows } = await db.pool.query(`SELECT (extract(epoch FROM next_slot_at - clock_timestamp()) * 1000)::float8 AS ahead_ms FROM broadcast_rate_limits WHERE bot_id = 42`);
        furthest = Math.max(furthest, rows[0].ahead_ms);
      }
    })();
    await Promise.all(Array.from({ length: 20 }, (_v, i) => send(i % 2 ? lateJob : quietJob)));
    sending = false;
    await watch;
    assert.is(api.delivered.length, 36);
    // Twenty sends at 1000/s need 21 ms of timeline.
    assert.ok(furthest < 200, `the shared timeline ran ${Math.round(furthest)} ms ahead of now`);
  } finally {
    await api.stop();
    await db.drop();
  }
});

test('a send job in a process running a broadcast takes a slot of its batch, and every recipient still gets one message within the limit', async () => {
  // chaos load --stress: a send job reserving its own slot waited behind every batch the
  // broadcasts had reserved (95 ms on average), holding its worker; the clients' send jobs queued
  // for seconds. Spied, not replaced: the borrow is the real one.
  const borrow = SlotShare.prototype.borrow;
  const lent: (number | null)[] = [];
  SlotShare.prototype.borrow = function (...args) {
    const slot = borrow.apply(this, args);
    lent.push(slot);
    return slot;
  };
  try {
    await withTelegram({ queue: { rateLimit: 50 } }, async ({ db, api, queue }) => {
      const jobs = watchJobs(queue);
      const broadcastJob = await insertJob(db, 'broadcast', { message: { text: 'news' }, chat_ids: range(1, 100) });
      // Asked for now: the broadcast may finish while the send jobs run.
      const broadcastDone = jobs.done(broadcastJob, undefined, 60_000);
      broadcastDone.catch(() => undefined);
      await api.waitFor('delivered', () => api.delivered.length >= 10);
      const sendJobs: number[] = [];
      for (let i = 0; i < 5; i++) {
        const jobId = await insertJob(db, 'send', { chat_id: 5_000 + i, message: { text: 'your code is 1234' } });
        sendJobs.push(jobId);
        await jobs.done(jobId, undefined, 30_000);
      }
      await broadcastDone;
      for (const jobId of sendJobs) assert.is((await jobRow(db, jobId)).status, 'completed');
      assert.ok(lent.some((slot) => slot !== null), `no send job borrowed a slot (${lent.length} tries)`);
      for (let chat = 1; chat <= 100; chat++) assert.is(api.deliveredCount(chat), 1, `chat ${chat}`);
      assert.ok(api.maxCallsInWindow(1000) <= 50, `${api.maxCallsInWindow(1000)} calls in one second at 50/s`);
    });
  } finally {
    SlotShare.prototype.borrow = borrow;
  }
});

test('a send job whose timers run 15-40 ms late borrows a slot just passed and sends, instead of borrowing slot after slot', async () => {
  // Review: every lent slot is about 1/rate ahead, so a wake 15-40 ms late missed each one; the job
  // borrowed the next, and the next (1,612 slots in 43 s for one job), each a slot the broadcast
  // skipped. A late wake now takes a slot the broadcast has not reached within the 10 ms a send may
  // be late, and leaves at once; at most three borrows per job.
  const borrow = SlotShare.prototype.borrow;
  let lent = 0;
  SlotShare.prototype.borrow = function (...args) {
    const slot = borrow.apply(this, args);
    if (slot !== null) lent++;
    return slot;
  };
  let lateBy = 15;
  const late: Sleep = (ms, signal) => sleep(ms + (lateBy = 15 + ((lateBy + 7) % 26)), signal);
  try {
    await withTelegram({ queue: { rateLimit: 100, sleep: late } }, async ({ db, api, queue }) => {
      const jobs = watchJobs(queue);
      const broadcastJob = await insertJob(db, 'broadcast', { message: { text: 'news' }, chat_ids: range(1, 300) });
      const broadcastDone = jobs.done(broadcastJob, undefined, 120_000);
      broadcastDone.catch(() => undefined);
      await api.waitFor('delivered', () => api.delivered.length >= 10);
      for (let i = 0; i < 5; i++) {
        const jobId = await insertJob(db, 'send', { chat_id: 5_000 + i, message: { text: 'your code is 1234' } });
        await jobs.done(jobId, undefined, 120_000);
        assert.is((await jobRow(db, jobId)).status, 'completed');
      }
      assert.ok(lent <= 3 * 5, `${lent} slots borrowed by 5 send jobs`);
      await broadcastDone;
      for (let chat = 1; chat <= 300; chat++) assert.is(api.deliveredCount(chat), 1, `chat ${chat}`);
    });
  } finally {
    SlotShare.prototype.borrow = borrow;
  }
});

test.run();
