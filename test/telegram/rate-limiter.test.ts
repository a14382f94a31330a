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

test.run();
