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
//   GET  /broadcasts/:id/report      engagement: delivered, clickers, CTR, replies, opt-outs … per variant and link
//   POST /jobs/:id/retry             failed or cancelled → pending, due now, one more attempt
//   POST /jobs/:id/cancel            pending → cancelled; a running broadcast job → its broadcast cancelled
//   POST /broadcasts/:id/pause|resume|cancel
//   GET  /schedules                  every recurring schedule
//   POST /schedules                  add one: {name, cron, time_zone, job_type, payload, queue, priority,
//                                    max_attempts, backfill_seconds, enabled} (name and cron required)
//   POST /schedules/:name/pause|resume|run-now|remove
//
// Shapes: /health and /status are live state, in the camelCase of getStatus() (the original
// system's `activeJobs`). Records read from the tables (jobs, broadcasts, failed jobs, statistics)
// are the stores' rows under the tables' snake_case column names, as psql shows them, as `bqctl
// --json` prints them and as the original deployment doc's curl examples did (total_jobs, job_id …).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorMessage, type Logger } from '../log.js';
import { getJob, failedJobs, retryJobs } from '../queue/jobs-store.js';
import { broadcastProgress } from '../broadcast/progress.js';
import { cancelJobs, setBroadcastStatus, type BroadcastAction } from '../broadcast/control.js';
import { requestGuard, type GuardOptions } from './guard.js';
import type { Pool } from '../db/pool.js';
import type { QueueAccess } from './queue-access.js';
import { parseId, parseLimit, readJsonBody, splitUrl, truncate } from './request.js';
import { send } from './response.js';
import { statistics } from './statistics.js';
import { health, jobActionReply, statisticsView, statusView, type Reply } from './views.js';
import { HttpError } from '../errors.js';
import { addSchedule, listSchedules, removeSchedule, runScheduleNow, scheduleWire, setScheduleEnabled, type ScheduleSpec } from '../schedules/schedules-store.js';
import { broadcastReport } from '../engagement/report.js';

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
  /** A POST's JSON body (null when empty). */
  body: Record<string, unknown> | null;
  params: string[];
  query: URLSearchParams;
  pool: Pool;
}

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
          return { status: 200, body: rows };
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
          return { status: 200, body: job };
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
          return { status: 200, body: broadcast };
        },
      },
    },
    {
      pattern: /^\/broadcasts\/([^/]*)\/report$/,
      methods: {
        GET: async ({ pool, params }) => {
          const id = parseId(params[0]!, 'broadcast');
          const report = await broadcastReport(pool, id);
          if (!report) throw new HttpError(404, `broadcast ${id} does not exist`);
          return { status: 200, body: report };
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
          return { status: 200, body: result.broadcast };
        },
      },
    },
    { pattern: /^\/schedules$/, methods: {
      GET: async ({ pool }) => ({ status: 200, body: (await listSchedules(pool)).map(scheduleWire) }),
      POST: async ({ pool, body }) => {
        if (!body) throw new HttpError(400, 'send the schedule as a JSON object: {"name", "cron", "time_zone", "job_type", "payload", …}');
        const spec = scheduleSpec(body);
        try {
          return { status: 201, body: scheduleWire(await addSchedule(pool, spec)) };
        } catch (error) {
          if ((error as { code?: string }).code) throw error;
          throw new HttpError(/exists already/.test((error as Error).message) ? 409 : 400, (error as Error).message);
        }
      },
    } },
    {
      pattern: /^\/schedules\/([^/]+)\/(pause|resume|run-now|remove)$/,
      methods: {
        POST: async ({ pool, params }) => {
          const name = decodeURIComponent(params[0]!);
          const action = params[1]!;
          const missing = () => new HttpError(404, `schedule ${JSON.stringify(name)} does not exist`);
          if (action === 'remove') {
            if (!(await removeSchedule(pool, name))) throw missing();
            return { status: 200, body: { name, removed: true } };
          }
          if (action === 'run-now') {
            const job = await runScheduleNow(pool, name);
            if (!job) throw missing();
            return { status: 200, body: { name, job_id: job.jobId } };
          }
          const row = await setScheduleEnabled(pool, name, action === 'resume');
          if (!row) throw missing();
          return { status: 200, body: scheduleWire(row) };
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
    const body = method === 'POST' ? await readJsonBody(req) : null;
    const pool = access.pool();
    if (!pool) throw new HttpError(503, 'the queue is not running (no database connection)');
    const reply = await run({ req, body, params, query, pool });
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

/** A schedule from a request body in the wire's snake_case names; a wrong type is a 400 naming the field. */
function scheduleSpec(body: Record<string, unknown>): ScheduleSpec {
  const text = (key: string, required = false): string | undefined => {
    const v = body[key];
    if (v === undefined || v === null) {
      if (required) throw new HttpError(400, `${key} is required`);
      return undefined;
    }
    if (typeof v !== 'string') throw new HttpError(400, `${key} must be a string`);
    return v;
  };
  const int = (key: string): number | undefined => {
    const v = body[key];
    if (v === undefined || v === null) return undefined;
    if (!Number.isInteger(v)) throw new HttpError(400, `${key} must be a whole number`);
    return v as number;
  };
  const payload = body.payload;
  if (payload !== undefined && (typeof payload !== 'object' || payload === null || Array.isArray(payload))) throw new HttpError(400, 'payload must be a JSON object');
  if (body.enabled !== undefined && typeof body.enabled !== 'boolean') throw new HttpError(400, 'enabled must be true or false');
  return {
    name: text('name', true)!, cron: text('cron', true)!, timeZone: text('time_zone'), jobType: text('job_type'), queue: text('queue'),
    payload: payload as Record<string, unknown> | undefined, priority: int('priority'), maxAttempts: int('max_attempts'),
    backfillSeconds: int('backfill_seconds'), enabled: body.enabled as boolean | undefined,
  };
}
