import type { BroadcastQueue } from '../../src/broadcast-queue.js';
import type { TestDatabase } from './db.js';
import { until } from './wait.js';

/**
 * Resolves once the daemon has settled into idling: no claim in flight or about to start, and its
 * offer of `free` slots to the insert trigger written (sql/0025). A daemon that just started still
 * claims once or twice (start, listener connected), and each claim withdraws and then rewrites
 * the offer: a test that counts statements or expects a hand-over must begin after that.
 */
export async function untilOffering(queue: BroadcastQueue, db: TestDatabase, free: number, timeoutMs = 10_000): Promise<void> {
  const scheduler = (queue as unknown as { parts: { scheduler: { claims: Set<unknown>; scheduledWake: boolean } } }).parts.scheduler;
  const quiet = () => scheduler.claims.size === 0 && !scheduler.scheduledWake;
  await until(async () => {
    if (!quiet()) return false;
    const offered = (await db.pool.query('SELECT free FROM broadcast_queue_idle_slots WHERE daemon_id = $1', [queue.daemonId])).rows[0]?.free === free;
    return offered && quiet();
  }, timeoutMs, `the idle daemon offering ${free} slots`);
}
