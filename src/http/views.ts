// What each admin route answers. /health and /status are live state, in the camelCase of
// getStatus(); records read from the tables use the tables' snake_case column names.
import type { Pool } from '../db/pool.js';
import { checkDatabase } from '../db/health.js';
import type { Logger } from '../log.js';
import type { FailedJob, JobActionResult, JobRow } from '../queue/jobs-store.js';
import { broadcastsInProgress, type BroadcastProgress } from '../broadcast/broadcasts-store.js';
import { readRateLimitState } from '../telegram/rate-limiter.js';

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

export function jobView(j: JobRow) {
  return {
    job_id: j.jobId, queue: j.queue, job_type: j.jobType, payload: j.payload, priority: j.priority, run_at: j.runAt,
    max_attempts: j.maxAttempts, job_key: j.jobKey, status: j.status, attempts: j.attempts, last_error: j.lastError,
    last_error_reason: j.lastErrorReason,
    errors: j.errors, result: j.result, locked_by: j.lockedBy, created_at: j.createdAt, started_at: j.startedAt,
    finished_at: j.finishedAt, updated_at: j.updatedAt, depends_on: j.dependsOn, on_dependency_failure: j.onDependencyFailure,
    open_dependencies: j.openDependencies,
  };
}

export function broadcastView(b: BroadcastProgress) {
  return {
    broadcast_id: b.broadcastId, title: b.title, status: b.status, job_id: b.jobId,
    total: b.total, sent: b.sent, failed: b.failed, blocked: b.blocked, skipped: b.skipped, unknown: b.unknown,
    done: b.done, remaining: b.remaining, progress: b.progress, rate_per_second: b.ratePerSecond, eta_seconds: b.etaSeconds,
    failure_reason: b.failureReason, allow_paid_broadcast: b.allowPaidBroadcast, frequency_cap: b.frequencyCap,
    ...(b.message !== undefined ? { message: b.message, variants: b.variants, audience: b.audience } : {}),
    created_at: b.createdAt, started_at: b.startedAt, finished_at: b.finishedAt, updated_at: b.updatedAt,
  };
}

export function jobActionReply(result: JobActionResult): Reply {
  switch (result.outcome) {
    case 'not_found':
      throw new HttpError(404, `job ${result.jobId} does not exist`);
    case 'conflict':
      return { status: 409, body: { error: result.error, status: result.status } };
    case 'broadcast_cancelled':
      return { status: 200, body: { outcome: result.outcome, broadcast_id: result.broadcastId, job: jobView(result.job) } };
    default:
      return { status: 200, body: { outcome: result.outcome, job: jobView(result.job) } };
  }
}

export function failedJobView(j: FailedJob) {
  return { job_id: j.jobId, queue: j.queue, job_type: j.jobType, last_error: j.lastError, last_error_reason: j.lastErrorReason, attempts: j.attempts, max_attempts: j.maxAttempts, finished_at: j.finishedAt, payload: j.payload };
}
