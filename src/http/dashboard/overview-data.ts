// What the overview shows, read through the same area operations as the admin API: the job
// counts (partial indexes and kept counts), live daemons, rate limit rows, broadcasts in progress
// and the per-minute series. Used by the page and by its live stream.
import type { Pool } from '../../db/pool.js';
import { jobGauges, jobThroughput, type ThroughputPoint } from '../../queue/job-counts.js';
import type { QueueStatus } from '../../queue/status.js';
import { broadcastsInProgress, type BroadcastProgress } from '../../broadcast/progress.js';
import { messagesSentSeries } from '../../broadcast/messages-sent.js';
import { readRateLimitState, type RateLimitState } from '../../telegram/rate-limit-sql.js';
import type { QueueAccess } from '../queue-access.js';
import type { RateLimitedCounter, RateLimitedCounts } from './rate-limited.js';

export interface OverviewData {
  status: QueueStatus;
  due: Record<string, number>;
  rateLimits: RateLimitState[];
  inProgress: BroadcastProgress[];
  /** Per minute over the last hour, and per 15 minutes over the last day. */
  charts: { hour: Series; day: Series };
  halted: string | null;
  /** The 429s this daemon got; null without a Telegram bot here. */
  rateLimited: RateLimitedCounts | null;
}

/** Columns: bucket start (epoch s), messages sent, jobs completed, jobs failed. */
export type Series = [number[], number[], number[], number[]];

function series(messages: [number, number][], jobs: ThroughputPoint[]): Series {
  const sent = new Map(messages);
  return [jobs.map((p) => p[0]), jobs.map((p) => sent.get(p[0]) ?? 0), jobs.map((p) => p[1]), jobs.map((p) => p[2])];
}

export async function readOverview(access: QueueAccess, pool: Pool, rateLimited: RateLimitedCounter): Promise<OverviewData> {
  const status = await access.status();
  const [gauges, rateLimits, inProgress, hourJobs, hourSent, dayJobs, daySent] = await Promise.all([
    jobGauges(pool, Object.keys(status.queues)),
    readRateLimitState(pool),
    broadcastsInProgress(pool),
    jobThroughput(pool, 1, 1),
    messagesSentSeries(pool, 1, 1),
    jobThroughput(pool, 24, 15),
    messagesSentSeries(pool, 24, 15),
  ]);
  const due: Record<string, number> = {};
  for (const p of gauges.pending) due[p.queue] = p.due;
  return {
    status, due, rateLimits, inProgress,
    charts: { hour: series(hourSent, hourJobs), day: series(daySent, dayJobs) },
    halted: access.telegram()?.halted ?? null,
    rateLimited: access.telegram() ? rateLimited.counts() : null,
  };
}
