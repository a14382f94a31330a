// Prometheus metrics for one BroadcastQueue, on a Registry of its own: a process may hold several
// queues (tests do), and the global default registry would make their metric names collide.
// Counters follow the queue's events; the job gauges are read from the database at scrape time.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { REASON_CODES, type ReasonCode } from '../errors.js';
import { errorMessage } from '../log.js';
import type { Job } from '../queue/claimer.js';
import type { JobEvent } from '../queue/worker-pool.js';
import { jobGauges, type JobGaugeSnapshot } from '../queue/job-counts.js';
import type { QueueAccess } from './queue-access.js';

export const METRIC_PREFIX = 'broadcast_queue_';
const JOB_STATUSES = ['waiting', 'pending', 'processing', 'completed', 'failed', 'cancelled'] as const;
// Insert (or due) to start, in seconds: 1 ms … 60 s.
const START_LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export interface Metrics {
  registry: Registry;
  /** Serves the exposition format (GET or HEAD). No auth of its own: the admin server guards it. */
  handler(req: IncomingMessage, res: ServerResponse): void;
}

/**
 * The metrics of one queue. Use `queue.metrics()`, which supplies `access` and creates them once;
 * counters only see events from the moment they are created.
 */
export function createMetrics(access: QueueAccess): Metrics {
  const registry = new Registry();
  const registers = [registry];
  const log = access.log.child({ component: 'metrics' });
  const name = (n: string) => `${METRIC_PREFIX}${n}`;

  // --- read at scrape time -------------------------------------------------------------------
  // The three job gauges share one query per scrape (prom-client collects metrics concurrently).
  let snapshot: Promise<JobGaugeSnapshot | null> | null = null;
  const readJobs = (): Promise<JobGaugeSnapshot | null> => {
    snapshot ??= (async () => {
      const pool = access.pool();
      if (!pool) return null;
      try {
        return await jobGauges(pool, access.queues);
      } catch (error) {
        log.warn({ err: errorMessage(error) }, 'metrics: could not read job counts');
        return null;
      }
    })().finally(() => {
      snapshot = null;
    });
    return snapshot;
  };

  new Gauge({
    name: name('jobs'),
    help: 'Jobs in broadcast_queue_jobs by queue and status, read at scrape time; queues this daemon is not configured for are summed as queue="other".',
    labelNames: ['queue', 'status'],
    registers,
    async collect() {
      const s = await readJobs();
      this.reset();
      if (!s) return;
      // The configured queues, plus 'other' when jobs of unconfigured ones exist: never a producer's choice.
      const queues = new Set([...access.queues, ...s.byState.map((r) => r.queue)]);
      for (const q of queues) for (const status of JOB_STATUSES) this.set({ queue: q, status }, 0);
      for (const r of s.byState) this.set({ queue: r.queue, status: r.status }, r.count);
    },
  });
  new Gauge({
    name: name('depth'),
    help: 'Pending jobs already due (the backlog) by queue; scheduled ones are in broadcast_queue_jobs{status="pending"}.',
    labelNames: ['queue'],
    registers,
    async collect() {
      const s = await readJobs();
      this.reset();
      if (!s) return;
      for (const q of access.queues) this.set({ queue: q }, 0);
      for (const p of s.pending) this.set({ queue: p.queue }, p.due);
    },
  });
  new Gauge({
    name: name('oldest_pending_age_seconds'),
    help: 'Age of the oldest due pending job by queue, in seconds since it became due; 0 when none is waiting.',
    labelNames: ['queue'],
    registers,
    async collect() {
      const s = await readJobs();
      this.reset();
      if (!s) return;
      for (const q of access.queues) this.set({ queue: q }, 0);
      for (const p of s.pending) this.set({ queue: p.queue }, p.oldestDueSeconds ?? 0);
    },
  });

  const listenerConnected = new Gauge({
    name: name('listener_connected'),
    help: '1 while the LISTEN connection is up, else 0 (jobs then run on the fallback sweep only).',
    registers,
    collect() {
      this.set(access.runtime().listenerConnected ? 1 : 0);
    },
  });
  listenerConnected.set(access.runtime().listenerConnected ? 1 : 0);
  access.on('listener:connected', () => listenerConnected.set(1));
  access.on('listener:disconnected', () => listenerConnected.set(0));

  new Gauge({
    name: name('active_jobs'),
    help: 'Jobs this process is running now.',
    registers,
    collect() {
      this.set(access.runtime().activeJobs);
    },
  });
  new Gauge({
    name: name('telegram_halted'),
    help: '1 while Telegram sending is halted because the bot token was rejected (401), else 0.',
    registers,
    collect() {
      this.set(access.telegram()?.halted ? 1 : 0);
    },
  });

  // --- from the queue's events ---------------------------------------------------------------
  const claims = new Counter({ name: name('claims_total'), help: 'Jobs claimed by this process.', registers });
  access.on('claimed', (count: number) => claims.inc(count));

  const outcomes = new Counter({
    name: name('job_outcomes_total'),
    help: 'Job runs by job_type and outcome: completed, failed (for good), retry (after backoff) or snooze (no attempt spent).',
    labelNames: ['job_type', 'outcome'],
    registers,
  });
  const failures = new Counter({
    name: name('job_failures_total'),
    help: `Job runs that ended in an error (outcome failed or retry) by job_type and reason code (${REASON_CODES.join(', ')}).`,
    labelNames: ['job_type', 'reason'],
    registers,
  });
  access.on('job:done', (event: JobEvent) => {
    const jobType = event.job.jobType;
    outcomes.inc({ job_type: jobType, outcome: event.outcome.kind });
    if (event.outcome.kind === 'failed' || event.outcome.kind === 'retry') failures.inc({ job_type: jobType, reason: event.outcome.reason });
  });

  const startLatency = new Histogram({
    name: name('job_start_latency_seconds'),
    help: 'From a job becoming runnable (inserted, or due if scheduled or retried later) to its start, by job_type.',
    labelNames: ['job_type'],
    buckets: START_LATENCY_BUCKETS,
    registers,
  });
  access.on('job:start', (job: Job) => {
    const runnableSince = Math.max(new Date(job.createdAt).getTime(), new Date(job.runAt).getTime());
    // created_at and run_at come from the database's clock; a little skew must not go negative.
    if (Number.isFinite(runnableSince)) startLatency.observe({ job_type: job.jobType }, Math.max(0, (Date.now() - runnableSince) / 1000));
  });

  // --- from Telegram delivery ----------------------------------------------------------------
  const deliveries = new Counter({
    name: name('deliveries_total'),
    help: 'Telegram send outcomes by job_type (send, broadcast) and outcome: sent, blocked, failed, skipped, unknown, retry, deferred.',
    labelNames: ['job_type', 'outcome'],
    registers,
  });
  const sent = new Counter({
    name: name('messages_sent_total'),
    help: 'Messages Telegram accepted. For messages per second use rate(broadcast_queue_messages_sent_total[1m]).',
    registers,
  });
  const rateLimited = new Counter({ name: name('rate_limited_total'), help: 'HTTP 429 answers from the Bot API.', registers });
  const pausedSeconds = new Counter({ name: name('rate_limit_pause_seconds_total'), help: 'Seconds of sending pause that 429 answers asked for (retry_after).', registers });
  const deliveryErrors = new Counter({
    name: name('delivery_errors_total'),
    help: 'Failed Bot API sends by job_type (send, broadcast) and reason code (rate_limited, server_error, network, timeout, blocked, chat_not_found, migrated, content, bad_request, unauthorized, outcome_unknown); every failed call counts, retried or not.',
    labelNames: ['job_type', 'reason'],
    registers,
  });
  access.telegram()?.on('delivery', (d: { jobType: string; outcome: string; count?: number; reason?: ReasonCode }) => {
    deliveries.inc({ job_type: d.jobType, outcome: d.outcome }, d.count ?? 1);
    if (d.outcome === 'sent') sent.inc(d.count ?? 1);
    if (d.reason) deliveryErrors.inc({ job_type: d.jobType, reason: d.reason }, d.count ?? 1);
  });
  access.telegram()?.on('rate-limited', (r: { retryAfterMs: number }) => {
    rateLimited.inc();
    if (Number.isFinite(r.retryAfterMs) && r.retryAfterMs > 0) pausedSeconds.inc(r.retryAfterMs / 1000);
  });

  // --- engagement (src/engagement): by kind only, never by broadcast, so the series stay few -----
  const engagement = new Counter({
    name: name('engagement_total'),
    help: 'Engagement seen by this process: click and press (tracked links and buttons), and reply, reaction, opt_out, opt_in and block among the bot\'s updates, before they are matched to a broadcast. Per broadcast: GET /broadcasts/:id/report.',
    labelNames: ['kind'],
    registers,
  });
  access.on('engagement', (kind: string) => engagement.inc({ kind }));
  const refused = new Counter({
    name: name('link_tokens_refused_total'),
    help: 'Tracked link (redirect listener) and button (callback) tokens refused as bad, forged, expired or not of that broadcast\'s message, by kind (link, button); nothing was recorded for them.',
    labelNames: ['kind'],
    registers,
  });
  access.on('engagement:refused', (kind: string) => refused.inc({ kind }));
  const abDecisions = new Counter({
    name: name('ab_decisions_total'),
    help: 'A/B tests decided by this process (test, then send the winner), by metric and outcome: winner (a significant one, sent to the rest) or fallback (none was).',
    labelNames: ['metric', 'outcome'],
    registers,
  });
  access.telegram()?.on('broadcast:ab-decided', (d: { metric: string; winner: string | null }) => abDecisions.inc({ metric: d.metric, outcome: d.winner ? 'winner' : 'fallback' }));

  collectDefaultMetrics({ register: registry });

  return {
    registry,
    handler(req, res) {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
        res.end(JSON.stringify({ error: `${req.method} is not allowed on /metrics; use GET` }));
        return;
      }
      registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' });
          res.end(text);
        },
        (error: unknown) => {
          log.error({ err: errorMessage(error) }, 'metrics: scrape failed');
          res.writeHead(500, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
          res.end(JSON.stringify({ error: 'internal server error; the daemon log has the details' }));
        },
      );
    },
  };
}
