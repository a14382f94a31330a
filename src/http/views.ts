// What each admin route answers. /health and /status are live state, in the camelCase of
// getStatus(); records (a job, a broadcast) are the stores' rows as they are, under the tables'
// column names, so the API and `bqctl --json` print one record the same way.
import type { Pool } from '../db/pool.js';
import { checkDatabase } from '../db/health.js';
import type { Logger } from '../log.js';
import type { JobActionResult } from '../queue/jobs-store.js';
import { broadcastsInProgress } from '../broadcast/progress.js';
import { readRateLimitState } from '../telegram/rate-limit-sql.js';

import type { QueueAccess } from './queue-access.js';
import type { QueueStatistics } from './statistics.js';
import { HttpError } from '../errors.js';

/** /health gives the database this long to answer SELECT 1. */
const HEALTH_DB_TIMEOUT_MS = 2_000;

export type Reply = { status: number; body: unknown };

export async function health(access: QueueAccess, log: Logger): Promise<Reply> {
  const runtime = access.runtime();
  const pool = access.pool();
  const db = pool ? await checkDatabase(pool, HEALTH_DB_TIMEOUT_MS) : { reachable: false, latencyMs: null, error: 'not connected' };
  if (!db.reachable) log.warn({ err: db.error }, 'health check: database unreachable');
  const bot = access.telegram();
  const telegram = bot ? { botId: bot.botId, halted: bot.halted } : null;
  const reasons: string[] = [];
  if (!runtime.running) reasons.push('the queue is not running');
  if (!db.reachable) reasons.push(pool ? `the database did not answer SELECT 1 within ${HEALTH_DB_TIMEOUT_MS} ms` : 'no database connection');
  if (!runtime.listenerConnected) reasons.push('the LISTEN connection is down (jobs still run on the fallback sweep)');
  if (telegram?.halted) reasons.push(`Telegram sending is halted: ${telegram.halted}`);
  const body = {
    status: reasons.length ? 'unhealthy' : 'healthy',
    ...(reasons.length ? { reasons } : {}),
    running: runtime.running,
    listener: { connected: runtime.listenerConnected },
    database: { reachable: db.reachable, latencyMs: db.latencyMs },
    processor: { running: runtime.running, paused: runtime.paused, activeJobs: runtime.activeJobs, concurrency: runtime.concurrency },
    telegram,
  };
  return { status: reasons.length ? 503 : 200, body };
}

export async function statusView(access: QueueAccess, pool: Pool) {
  const [status, rateLimits, inProgress] = await Promise.all([access.status(), readRateLimitState(pool), broadcastsInProgress(pool)]);
  // The original deployment doc read totals at the top level (`jq '.pending'`, `jq '.activeJobs'`).
  const totals = { waiting: 0, pending: 0, processing: 0, completed: 0, failed: 0, cancelled: 0 };
  for (const counts of Object.values(status.queues)) for (const key of Object.keys(totals) as (keyof typeof totals)[]) totals[key] += counts[key];
  return { ...totals, ...status, rateLimits, broadcastsInProgress: inProgress };
}

export function statisticsView(s: QueueStatistics) {
  return {
    total_jobs: s.totalJobs,
    ...s.byStatus,
    by_job_type: s.byJobType,
    completed_last_hour: s.completedLastHour,
    completed_last_24h: s.completedLast24h,
    failed_last_hour: s.failedLastHour,
    failed_last_24h: s.failedLast24h,
    average_duration_seconds_last_hour: s.averageDurationSecondsLastHour,
    retried_jobs: s.retriedJobs,
    messages_sent_last_hour: s.messagesSentLastHour,
    messages_sent_last_24h: s.messagesSentLast24h,
  };
}

export function jobActionReply(result: JobActionResult): Reply {
  switch (result.outcome) {
    case 'not_found':
      throw new HttpError(404, `job ${result.job_id} does not exist`);
    case 'conflict':
      return { status: 409, body: { error: result.error, status: result.status } };
    case 'broadcast_cancelled':
      return { status: 200, body: { outcome: result.outcome, broadcast_id: result.broadcast_id, job: result.job } };
    default:
      return { status: 200, body: { outcome: result.outcome, job: result.job } };
  }
}
