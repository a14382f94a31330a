// The admin API: a plain node:http (req, res, next?) handler that routes on req.url relative to
// where it is mounted, so it works under Express (`app.use('/api/admin/queue', queue.adminHandler())`
// strips the mount path) and in startAdminServer (which strips /api/admin/queue itself).
//
// Routes (relative to the mount):
//   GET  /health                     no token needed; 200 healthy or 503 with reasons
//   GET  /status                     the live view: getStatus(), rate limits, broadcasts in progress
//   GET  /statistics                 totals over the job table and recent deliveries
//   GET  /broadcasts/failed?limit=   failed send and broadcast jobs, newest first (default 50, at most 500)
//   GET  /jobs/:id                   the job row
//   GET  /broadcasts/:id             the broadcast row with progress, rate and ETA
//   POST /jobs/:id/retry             failed or cancelled → pending, due now, one more attempt
//   POST /jobs/:id/cancel            pending → cancelled; a running broadcast job → its broadcast cancelled
//   POST /broadcasts/:id/pause|resume|cancel
//
// Shapes: /health and /status are live state, in the camelCase of getStatus(). Records read from
// the tables (jobs, broadcasts, failed jobs, statistics) use the tables' snake_case column names, as
// psql shows them and as the original deployment doc's curl examples did (total_jobs, job_id …).
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isLoopback } from '../config/load.js';
import type { Pool } from '../db/pool.js';
import { errorMessage, type Logger } from '../log.js';
import { readRateLimitState } from '../telegram/rate-limiter.js';
import { checkDatabase } from '../db/health.js';
import { failedJobs, getJob, retryJobs, type JobActionResult, type JobRow } from '../queue/jobs-store.js';
import { broadcastProgress, broadcastsInProgress, type BroadcastProgress } from '../broadcast/broadcasts-store.js';
import { cancelJobs, setBroadcastStatus, type BroadcastAction } from '../broadcast/control.js';
import { statistics, type QueueStatistics } from './statistics.js';
import { HttpError, requestGuard, type GuardOptions } from './guard.js';
import type { Metrics } from './metrics.js';
import type { QueueAccess } from './queue-access.js';

/** Where startAdminServer mounts the admin API. */
export const ADMIN_PATH = '/api/admin/queue';
/** POST bodies are optional and small; anything larger is refused with 413. */
export const MAX_BODY_BYTES = 64 * 1024;
/** /health gives the database this long to answer SELECT 1. */
const HEALTH_DB_TIMEOUT_MS = 2_000;
const MAX_ID = 2n ** 53n;

export type AdminHandler = (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void) => void;

export interface AdminHandlerOptions extends GuardOptions {
  /** Bearer token for every route but /health. One of apiToken and allowUnauthenticated is required. */
  apiToken?: string;
  /**
   * Serve without a token. Then only local programs are answered: a loopback peer with a loopback
   * Host, no proxy headers, no foreign Origin, and POSTs sent as application/json (guard.ts says why).
   */
  allowUnauthenticated?: boolean;
  /** Defaults to the queue's logger. */
  log?: Logger;
}

interface Request {
  req: IncomingMessage;
  params: string[];
  query: URLSearchParams;
  pool: Pool;
}

type Reply = { status: number; body: unknown };
type RouteHandler = (r: Request) => Promise<Reply>;

interface Route {
  pattern: RegExp;
  methods: Partial<Record<'GET' | 'POST', RouteHandler>>;
}

/**
 * The admin API for one queue. Use `queue.adminHandler(options)`, which supplies `access`.
 * `next` is accepted for Express; the handler always answers itself (JSON 404 for unknown routes).
 */
export function createAdminHandler(access: QueueAccess, options: AdminHandlerOptions = {}): AdminHandler {
  const log = (options.log ?? access.log).child({ component: 'admin-api' });
  const guard = requestGuard(options, 'adminHandler()');
  // Without a token even /health is for local callers only; with one, /health is open to probes.
  const guardHealth = options.apiToken === undefined;

  const routes: Route[] = [
    { pattern: /^\/status$/, methods: { GET: async ({ pool }) => ({ status: 200, body: await statusView(access, pool) }) } },
    { pattern: /^\/statistics$/, methods: { GET: async ({ pool }) => ({ status: 200, body: statisticsView(await statistics(pool)) }) } },
    {
      pattern: /^\/broadcasts\/failed$/,
      methods: {
        GET: async ({ pool, query }) => {
          const limit = parseLimit(query.get('limit'));
          const rows = await failedJobs(pool, limit);
          return { status: 200, body: rows.map((j) => ({ job_id: j.jobId, queue: j.queue, job_type: j.jobType, last_error: j.lastError, attempts: j.attempts, max_attempts: j.maxAttempts, finished_at: j.finishedAt, payload: j.payload })) };
        },
      },
    },
    {
      pattern: /^\/jobs\/([^/]*)$/,
      methods: {
        GET: async ({ pool, params }) => {
          const id = parseId(params[0]!, 'job');
          const job = await getJob(pool, id);
          if (!job) throw new HttpError(404, `job ${id} does not exist`);
          return { status: 200, body: jobView(job) };
        },
      },
    },
    {
      pattern: /^\/jobs\/([^/]*)\/(retry|cancel)$/,
      methods: {
        POST: async ({ pool, params }) => {
          const id = parseId(params[0]!, 'job');
          const [result] = params[1] === 'retry' ? await retryJobs(pool, [id]) : await cancelJobs(pool, [id]);
          return jobActionReply(result!);
        },
      },
    },
    {
      pattern: /^\/broadcasts\/([^/]*)$/,
      methods: {
        GET: async ({ pool, params }) => {
          const id = parseId(params[0]!, 'broadcast');
          const broadcast = await broadcastProgress(pool, id);
          if (!broadcast) throw new HttpError(404, `broadcast ${id} does not exist`);
          return { status: 200, body: broadcastView(broadcast) };
        },
      },
    },
    {
      pattern: /^\/broadcasts\/([^/]*)\/(pause|resume|cancel)$/,
      methods: {
        POST: async ({ pool, params }) => {
          const id = parseId(params[0]!, 'broadcast');
          const result = await setBroadcastStatus(pool, id, params[1] as BroadcastAction);
          if (result.outcome === 'not_found') throw new HttpError(404, `broadcast ${id} does not exist`);
          if (result.outcome === 'conflict') return { status: 409, body: { error: result.error, status: result.status } };
          return { status: 200, body: broadcastView(result.broadcast) };
        },
      },
    },
  ];

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { path, query } = splitUrl(req.url);
    const method = req.method === 'HEAD' ? 'GET' : (req.method ?? 'GET');

    if (guardHealth) guard(req);
    if (path === '/health') {
      if (method !== 'GET') throw new HttpError(405, `${req.method} is not allowed on /health`, { allow: 'GET, HEAD' });
      const { status, body } = await health(access, log);
      return send(res, status, body);
    }
    guard(req);

    let matched: Route | undefined;
    let params: string[] = [];
    for (const route of routes) {
      const m = route.pattern.exec(path);
      if (m) {
        matched = route;
        params = m.slice(1);
        break;
      }
    }
    if (!matched) throw new HttpError(404, `no such route: ${truncate(path, 100)}`);
    const run = matched.methods[method as 'GET' | 'POST'];
    if (!run) {
      const allowed = Object.keys(matched.methods).flatMap((m) => (m === 'GET' ? ['GET', 'HEAD'] : [m]));
      throw new HttpError(405, `${truncate(req.method ?? '', 20)} is not allowed here; use ${allowed.join(' or ')}`, { allow: allowed.join(', ') });
    }
    if (method === 'POST') await readJsonBody(req);
    const pool = access.pool();
    if (!pool) throw new HttpError(503, 'the queue is not running (no database connection)');
    const reply = await run({ req, params, query, pool });
    send(res, reply.status, reply.body);
  }

  return (req, res, _next) => {
    handle(req, res).catch((error: unknown) => {
      if (error instanceof HttpError) {
        // Refused callers (403) are logged too: a web page or a rebinding name probing the API is news.
        if (error.status >= 500 || error.status === 403) log.warn({ method: req.method, url: req.url, status: error.status, reason: error.message }, 'admin API request refused');
        send(res, error.status, { error: error.message }, error.headers);
        // Refused bodies are not read; the connection is closed after the answer.
        if (error.status === 413) req.resume();
        return;
      }
      log.error({ err: errorMessage(error), method: req.method, url: req.url }, 'admin API request failed');
      send(res, 500, { error: 'internal server error; the daemon log has the details' });
    });
  };
}

// ---------------------------------------------------------------------------------------------
// Routes' views

async function health(access: QueueAccess, log: Logger): Promise<Reply> {
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

async function statusView(access: QueueAccess, pool: Pool) {
  const [status, rateLimits, inProgress] = await Promise.all([access.status(), readRateLimitState(pool), broadcastsInProgress(pool)]);
  // The original deployment doc read totals at the top level (`jq '.pending'`, `jq '.activeJobs'`).
  const totals = { pending: 0, processing: 0, completed: 0, failed: 0, cancelled: 0 };
  for (const counts of Object.values(status.queues)) for (const key of Object.keys(totals) as (keyof typeof totals)[]) totals[key] += counts[key];
  return { ...totals, ...status, rateLimits, broadcastsInProgress: inProgress };
}

function statisticsView(s: QueueStatistics) {
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

function jobView(j: JobRow) {
  return {
    job_id: j.jobId, queue: j.queue, job_type: j.jobType, payload: j.payload, priority: j.priority, run_at: j.runAt,
    max_attempts: j.maxAttempts, job_key: j.jobKey, status: j.status, attempts: j.attempts, last_error: j.lastError,
    errors: j.errors, result: j.result, locked_by: j.lockedBy, created_at: j.createdAt, started_at: j.startedAt,
    finished_at: j.finishedAt, updated_at: j.updatedAt,
  };
}

function broadcastView(b: BroadcastProgress) {
  return {
    broadcast_id: b.broadcastId, title: b.title, status: b.status, job_id: b.jobId,
    total: b.total, sent: b.sent, failed: b.failed, blocked: b.blocked, skipped: b.skipped, unknown: b.unknown,
    done: b.done, remaining: b.remaining, progress: b.progress, rate_per_second: b.ratePerSecond, eta_seconds: b.etaSeconds,
    failure_reason: b.failureReason, allow_paid_broadcast: b.allowPaidBroadcast, frequency_cap: b.frequencyCap,
    ...(b.message !== undefined ? { message: b.message, variants: b.variants, audience: b.audience } : {}),
    created_at: b.createdAt, started_at: b.startedAt, finished_at: b.finishedAt, updated_at: b.updatedAt,
  };
}

function jobActionReply(result: JobActionResult): Reply {
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

// ---------------------------------------------------------------------------------------------
// Input

function splitUrl(url: string | undefined): { path: string; query: URLSearchParams } {
  const raw = url || '/';
  const q = raw.indexOf('?');
  let path = q < 0 ? raw : raw.slice(0, q);
  // One trailing slash is forgiven (/status/ is /status); the mount point itself is '/'.
  if (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
  if (!path.startsWith('/')) path = `/${path}`;
  return { path, query: new URLSearchParams(q < 0 ? '' : raw.slice(q + 1)) };
}

function parseId(segment: string, what: 'job' | 'broadcast'): number {
  let text: string;
  try {
    text = decodeURIComponent(segment);
  } catch {
    text = segment;
  }
  // Compared as a BigInt: Number() would round 2^53 + 1 down to 2^53 and let it through.
  const valid = /^[1-9][0-9]{0,15}$/.test(text) && BigInt(text) <= MAX_ID;
  if (!valid) throw new HttpError(400, `${what} id must be a positive integer, got ${JSON.stringify(truncate(text, 40))}`);
  return Number(text);
}

function parseLimit(raw: string | null): number {
  if (raw === null || raw === '') return 50;
  if (!/^[0-9]{1,9}$/.test(raw) || Number(raw) < 1) throw new HttpError(400, `limit must be a whole number from 1 to 500, got ${JSON.stringify(truncate(raw, 40))}`);
  return Math.min(500, Number(raw));
}

/**
 * Reads an optional JSON object body (no route needs one today; a bad one is still refused, so
 * a client that sends one finds out). A body an Express parser already consumed is not read again.
 */
async function readJsonBody(req: IncomingMessage): Promise<Record<string, unknown> | null> {
  const parsed = req as IncomingMessage & { _body?: boolean; body?: unknown };
  if (parsed._body || req.readableEnded) return isObject(parsed.body) ? parsed.body : null;
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) throw new HttpError(413, `the request body is larger than ${MAX_BODY_BYTES} bytes`, { connection: 'close' });
  const chunks: Buffer[] = [];
  let size = 0;
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        cleanup();
        reject(new HttpError(413, `the request body is larger than ${MAX_BODY_BYTES} bytes`, { connection: 'close' }));
      } else {
        chunks.push(chunk);
      }
    };
    const onEnd = () => {
      cleanup();
      resolve();
    };
    const onClose = () => {
      cleanup();
      reject(new HttpError(400, 'the request body ended early'));
    };
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onClose);
      req.off('aborted', onClose);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onClose);
    req.on('aborted', onClose);
  });
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return null;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new HttpError(400, 'the request body is not valid JSON');
  }
  if (!isObject(body)) throw new HttpError(400, 'the request body must be a JSON object');
  return body;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const truncate = (s: string, n: number) => (s.length > n ? `${s.slice(0, n)}…` : s);

// ---------------------------------------------------------------------------------------------
// Output and auth

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const json = safeJson(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'content-length': Buffer.byteLength(json),
    ...headers,
  });
  res.end(json);
}

/** A guard (guard.ts) as a (req, res) check for handlers outside the admin router (/metrics). */
export function guardedBy(guard: (req: IncomingMessage) => void): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    try {
      guard(req);
      return true;
    } catch (error) {
      if (!(error instanceof HttpError)) throw error;
      send(res, error.status, { error: error.message }, error.headers);
      return false;
    }
  };
}

// ---------------------------------------------------------------------------------------------
// The standalone server

export interface AdminServerOptions {
  /** Defaults to 127.0.0.1. A non-loopback address requires apiToken. */
  host?: string;
  /** Defaults to 3000; 0 picks a free port. */
  port?: number;
  /** Bearer token for everything but /health. Defaults to none: loopback only, local callers only (guard.ts). */
  apiToken?: string;
  /** Defaults to the queue's logger. */
  log?: Logger;
  /** The whole request (headers and body) must arrive within this. Defaults to 10 000 ms. */
  requestTimeoutMs?: number;
  /** The headers must arrive within this; at most requestTimeoutMs. Defaults to requestTimeoutMs. */
  headersTimeoutMs?: number;
  /** An idle kept-alive connection is closed after this. Defaults to 5 000 ms. */
  keepAliveTimeoutMs?: number;
}

export interface AdminServer {
  /** The server's root, e.g. http://127.0.0.1:3000 (the API is under /api/admin/queue). */
  url: string;
  server: http.Server;
  /** Stops accepting, lets requests in flight finish (for at most a few seconds), then resolves. */
  close(): Promise<void>;
}

/** What startAdminServer serves: a BroadcastQueue's admin handler and metrics. */
export interface AdminServable {
  readonly log: Logger;
  adminHandler(options?: AdminHandlerOptions): AdminHandler;
  metrics(): Metrics;
}

/**
 * Serves the admin API at /api/admin/queue/* and GET /metrics at the root. Refuses a
 * non-loopback host without a token.
 */
export async function startAdminServer(queue: AdminServable, options: AdminServerOptions = {}): Promise<AdminServer> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 3000;
  const log = (options.log ?? queue.log).child({ component: 'admin-server' });
  if (!options.apiToken && !isLoopback(host)) {
    throw new Error(`refusing to serve the admin API on ${host || 'every address'} without an API token: set BQ_API_TOKEN (apiToken), or listen on a loopback address such as 127.0.0.1`);
  }
  const requestTimeout = options.requestTimeoutMs ?? 10_000;
  const headersTimeout = Math.min(options.headersTimeoutMs ?? requestTimeout, requestTimeout);
  // Bound to loopback (checked above), so no token means local callers only; never open.
  const access: GuardOptions = options.apiToken !== undefined ? { apiToken: options.apiToken } : { allowUnauthenticated: true };
  const admin = queue.adminHandler({ ...access, log: options.log });
  const metrics = queue.metrics();
  const guard = guardedBy(requestGuard(access, 'startAdminServer()'));

  const server = http.createServer(
    {
      requestTimeout,
      headersTimeout,
      keepAliveTimeout: options.keepAliveTimeoutMs ?? 5_000,
      // How often Node looks for requests past those timeouts (its default is 30 s).
      connectionsCheckingInterval: Math.max(10, Math.min(1_000, Math.floor(headersTimeout / 2))),
    },
    (req, res) => {
      try {
        const url = req.url ?? '/';
        const path = url.split('?')[0]!;
        if (path === ADMIN_PATH || path.startsWith(`${ADMIN_PATH}/`)) {
          // What Express does for app.use(ADMIN_PATH, handler).
          req.url = url.slice(ADMIN_PATH.length) || '/';
          if (req.url.startsWith('?')) req.url = `/${req.url}`;
          return admin(req, res);
        }
        if (path === '/metrics' || path === '/metrics/') {
          if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { error: `${req.method} is not allowed on /metrics; use GET` }, { allow: 'GET, HEAD' });
          if (!guard(req, res)) return;
          return metrics.handler(req, res);
        }
        send(res, 404, { error: `no such route; the admin API is under ${ADMIN_PATH}/ and metrics at /metrics` });
      } catch (error) {
        log.error({ err: errorMessage(error) }, 'admin server request failed');
        send(res, 500, { error: 'internal server error; the daemon log has the details' });
      }
    },
  );
  // Node's own clientError handling answers 408 to a request past its timeouts and closes the socket.
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' || address.address.includes(':') ? `[${address.address}]` : address.address;
  const url = `http://${shownHost}:${address.port}`;
  let closing: Promise<void> | null = null;
  return {
    url,
    server,
    close() {
      closing ??= new Promise<void>((resolve) => {
        const force = setTimeout(() => server.closeAllConnections(), 3_000);
        force.unref();
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}

/**
 * JSON for a response. A job payload nested thousands deep (PostgreSQL accepts it) overflows
 * JSON.stringify's stack; past 64 levels a value is shown as a marker instead (chaos suite: a 500).
 */
function safeJson(body: unknown): string {
  return JSON.stringify(cutDeep(body, 64));
}

function cutDeep(value: unknown, levelsLeft: number): unknown {
  if (typeof value !== 'object' || value === null || value instanceof Date) return value;
  if (levelsLeft <= 0) return '[nested too deeply to show]';
  if (Array.isArray(value)) return value.map((v) => cutDeep(v, levelsLeft - 1));
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, cutDeep(v, levelsLeft - 1)]));
}
