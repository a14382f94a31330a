// The shared send timeline in broadcast_rate_limits, driven directly.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RateLimiter } from '../../src/telegram/rate-limiter.js';
import { silentLogger } from '../../src/log.js';
import { createTestDatabase } from '../helpers/db.js';

test('a broadcast does not reserve its next batch while the timeline is already reserved far ahead', async () => {
  // chaos load: client send jobs waited p99 3-8 s to start. A send job takes the slot at the end
  // of the shared timeline, and two broadcasts each reserving ~200 ms ahead kept that end up to
  // half a second away, holding every worker slot that long.
  const db = await createTestDatabase();
  try {
    const limiter = new RateLimiter(db.pool, 42, silentLogger());
    const first = await limiter.reserve(20, 100); // 205 ms of slots
    const second = await limiter.reserve(20, 100);
    const reservedAt = Date.now();
    // Reserved once the first batch had less than ~75 ms to go, not at once.
    assert.ok(reservedAt >= first.slots[first.slots.length - 1]! - 100, `reserved ${first.slots[first.slots.length - 1]! - reservedAt} ms before the first batch's last slot`);
    assert.ok(second.slots[0]! > first.slots[first.slots.length - 1]!);
  } finally {
    await db.drop();
  }
});

test('a reservation whose answer a stall delayed keeps its slots where the shared timeline put them', async () => {
  // chaos crashes under --stress: 251 calls in a second at 250/s. A slot's local time was the
  // database's plus half the reservation's round trip; a daemon stalled while the answer waited
  // moved its whole batch by half the stall, onto the slots the timeline gave the other daemon.
  const db = await createTestDatabase();
  let stallMs = 0;
  const stalling = {
    query: async (...args: Parameters<typeof db.pool.query>) => {
      const result = await (db.pool.query as (...a: unknown[]) => Promise<unknown>)(...args);
      if (stallMs) await new Promise((resolve) => setTimeout(resolve, stallMs));
      return result;
    },
  };
  try {
    const limiter = new RateLimiter(stalling as never, 42, silentLogger());
    await limiter.reserve(1, 100);
    stallMs = 400;
    const stalled = await limiter.reserve(1, 100);
    const { rows } = await db.pool.query(`SELECT extract(epoch FROM next_slot_at) * 1000 - 10.25 AS slot_ms FROM broadcast_rate_limits WHERE bot_id = 42`);
    // Database and daemon share this machine's clock: the slot is where PostgreSQL put it, not
    // ~200 ms (half the stall) later.
    const shift = stalled.slots[0]! - Number(rows[0].slot_ms);
    assert.ok(Math.abs(shift) < 50, `the slot moved ${Math.round(shift)} ms`);
  } finally {
    await db.drop();
  }
});

test.run();
