// /statistics: totals over the jobs (queue/) and the messages sent (broadcast/), read on one
// connection under one timeout.
import type { Pool } from '../db/pool.js';
import { boundedRead } from '../db/bounded-read.js';
import { readJobStatistics, type JobStatistics } from '../queue/job-counts.js';
import { readMessagesSent } from '../broadcast/messages-sent.js';

export interface QueueStatistics extends JobStatistics {
  /** Broadcast messages sent, counted to the minute as outcomes are written; send jobs are in completed*. */
  messagesSentLastHour: number;
  messagesSentLast24h: number;
}

/** Totals over every job and recent delivery. */
export function statistics(pool: Pool): Promise<QueueStatistics> {
  return boundedRead(pool, async (client) => {
    const jobs = await readJobStatistics(client);
    const messages = await readMessagesSent(client);
    return { ...jobs, messagesSentLastHour: messages.lastHour, messagesSentLast24h: messages.last24h };
  });
}
