// The web dashboard: a plain node:http (req, res, next?) handler like adminHandler(), served by
// startAdminServer at / and mountable in an existing app (`app.use('/dashboard', handler)` with
// basePath '/dashboard'). Who may look and who may change anything:
//   - with tokens: the login page takes the admin token (everything) or the read-only one (look
//     only), and hands out a session cookie (HttpOnly, SameSite=Strict); every POST must carry the
//     session's CSRF token;
//   - with no token (allowUnauthenticated): local callers only, by the admin API's own guard
//     (guard.ts), still with a session and its CSRF token.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorMessage, type Logger } from '../../log.js';
import { getJob, searchJobs } from '../../queue/jobs-store.js';
import { broadcastProgress, listBroadcasts } from '../../broadcast/progress.js';
import { countDeliveries } from '../../broadcast/finish.js';
import { migrationState } from '../../db/migrate.js';
import { readRateLimitState } from '../../telegram/rate-limit-sql.js';
import type { Pool } from '../../db/pool.js';
import { HttpError } from '../../errors.js';
import { requestGuard, type RequestGuard } from '../guard.js';
import type { QueueAccess } from '../queue-access.js';
import { parseId, splitUrl, truncate } from '../request.js';
import { health } from '../views.js';
import { runAction } from './actions.js';
import { answerCompose, checkCompose, sendJson } from './compose-actions.js';
import { COMPOSE_FORM_BYTES, emptyFields } from './compose-form.js';
import { composePage } from './pages/compose.js';
import { sendAsset } from './assets.js';
import type { PageContext } from './layout.js';
import { HeavyReads } from './heavy-reads.js';
import { KeptReports } from './kept-reports.js';
import { LiveStreams } from './live.js';
import { readOverview } from './overview-data.js';
import { RateLimitedCounter } from './rate-limited.js';
import { broadcastLive, broadcastPage, broadcastsPage, BROADCAST_STATUSES } from './pages/broadcasts.js';
import { healthPage, type HealthData } from './pages/health.js';
import { jobPage, jobsPage } from './pages/jobs.js';
import { jobFilterForm, jobSearch } from './job-filter.js';
import { bulkPreview } from './bulk.js';
import { bulkPage } from './pages/jobs-bulk.js';
import { loginPage } from './pages/login.js';
import { LoginThrottle } from './login-throttle.js';
import { overviewPage } from './pages/overview.js';
import { errorPage, overviewLive } from './pages/misc.js';
import { readForm, redirect, SECURITY_HEADERS, sendHtml } from './respond.js';
import { SubscriberRoutes } from './subscriber-routes.js';
import { adminTokenTooShort, MIN_ADMIN_TOKEN_BESIDE_READ_ONLY } from '../../config/load.js';
import { sameSecret, SessionKeeper, type Role, type Session } from './session.js';

export interface DashboardOptions {
  /** The admin token (BQ_API_TOKEN): logs in with every right. */
  apiToken?: string;
  /** A token that shows everything and changes nothing (BQ_VIEWER_TOKEN). */
  readOnlyToken?: string;
  /** With neither token: answer local callers only, as the admin API does without a token. Never implied. */
  allowUnauthenticated?: boolean;
  /** The path it is mounted at, for its links and cookie, e.g. '/dashboard'. Defaults to '' (the root). */
  basePath?: string;
  /** Mark the session cookie Secure (serve it behind HTTPS). Defaults to false. */
  secureCookie?: boolean;
  /** Defaults to the queue's logger. */
  log?: Logger;
}

export type DashboardHandler = ((req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void) => void) & {
  /** Ends the live streams and stops subscriber imports, so that a closing server need not wait for open tabs. */
  closeStreams(): void;
};

const PAGE_SIZE = 50;

export function createDashboardHandler(access: QueueAccess, options: DashboardOptions = {}): DashboardHandler {
  const log = (options.log ?? access.log).child({ component: 'dashboard' });
  const base = (options.basePath ?? '').replace(/\/+$/, '');
  if (base !== '' && !/^\/[\w\-/.]*$/.test(base)) throw new Error(`basePath must be a path such as /dashboard, got ${JSON.stringify(options.basePath)}`);
  const tokens: [string, Role][] = [];
  if (options.apiToken !== undefined) tokens.push([checkedToken(options.apiToken, 'apiToken'), 'admin']);
  if (options.readOnlyToken !== undefined) tokens.push([checkedToken(options.readOnlyToken, 'readOnlyToken'), 'read']);
  if (options.apiToken !== undefined && options.apiToken === options.readOnlyToken) throw new Error('readOnlyToken must differ from apiToken: one token cannot be both read-only and not');
  if (options.apiToken !== undefined && options.readOnlyToken !== undefined && options.apiToken.length < MIN_ADMIN_TOKEN_BESIDE_READ_ONLY) throw new Error(adminTokenTooShort('apiToken', 'readOnlyToken'));
  // No token: the admin API's own local-callers-only guard, on every request.
  const localOnly: RequestGuard | null = tokens.length ? null : requestGuard({ allowUnauthenticated: options.allowUnauthenticated }, 'the dashboard');
  const sessions = new SessionKeeper([options.apiToken, options.readOnlyToken], { path: base || '/', secure: options.secureCookie === true });
  const live = new LiveStreams(log);
  const subscribers = new SubscriberRoutes(log, live);
  const heavy = new HeavyReads();
  const reports = new KeptReports(heavy, log);
  const throttle = new LoginThrottle();
  const rateLimited = new RateLimitedCounter(access.telegram());

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { path, query } = splitUrl(req.url);
    const method = req.method === 'HEAD' ? 'GET' : (req.method ?? 'GET');
    if (method !== 'GET' && method !== 'POST') throw new HttpError(405, `${truncate(req.method ?? '', 20)} is not allowed; the dashboard uses GET and POST`, { allow: 'GET, HEAD, POST' });
    localOnly?.(req);
    if (path.startsWith('/assets/') && method === 'GET') {
      if (!sendAsset(res, path.slice('/assets/'.length))) throw new HttpError(404, 'no such asset');
      return;
    }
    if (path === '/login') return login(req, res, method);
    if (path === '/favicon.ico') return void res.writeHead(204, SECURITY_HEADERS).end();

    const found = sessions.fromRequest(req) ?? (localOnly ? sessions.issue('admin') : null);
    const session = found?.session;
    const cookies: string[] = found?.setCookie ? [found.setCookie] : [];
    if (!session) {
      if (method === 'GET' && !path.startsWith('/events/')) return redirect(res, `${base}/login`);
      throw new HttpError(401, 'log in first: the session is missing or has expired');
    }
    if (method === 'POST') return post(req, res, session, path);

    const pool = access.pool();
    if (!pool) throw new HttpError(503, 'the queue is not running (no database connection)');
    const notice = sessions.notice(req);
    if (notice) cookies.push(sessions.clearedNotice());
    const ctx: PageContext = { base, session, notice: notice ?? undefined };
    const page = await render(ctx, path, query, pool, res);
    if (page) sendHtml(res, 200, page, cookies.length ? { 'set-cookie': cookies } : {});
  }

  async function render(ctx: PageContext, path: string, query: URLSearchParams, pool: Pool, res: ServerResponse) {
    if (path === '/') return overviewPage(ctx, await readOverview(access, pool, rateLimited));
    if (path === '/jobs') {
      const form = jobFilterForm(query);
      const search = jobSearch(form, query.get('before'));
      return jobsPage(ctx, form, search, await searchJobs(pool, search, PAGE_SIZE));
    }
    if (path === '/jobs/bulk') return bulkPage(ctx, await bulkPreview(pool, query, heavy));
    let m = /^\/jobs\/([^/]+)$/.exec(path);
    if (m) {
      const id = parseId(m[1]!, 'job');
      const job = await getJob(pool, id);
      if (!job) throw new HttpError(404, `job ${id} does not exist`);
      return jobPage(ctx, job);
    }
    if (path === '/broadcasts') {
      const status = query.get('status') || null;
      if (status !== null && !(BROADCAST_STATUSES as readonly string[]).includes(status)) throw new HttpError(400, `status must be one of ${BROADCAST_STATUSES.join(', ')}`);
      const before = query.get('before') ? parseId(query.get('before')!, 'broadcast') : null;
      const rows = await listBroadcasts(pool, status ? [status] : null, before, PAGE_SIZE + 1);
      return broadcastsPage(ctx, rows.slice(0, PAGE_SIZE), status, rows.length > PAGE_SIZE ? rows[PAGE_SIZE - 1]!.broadcast_id : null);
    }
    m = /^\/broadcasts\/([^/]+)$/.exec(path);
    if (m) {
      const id = parseId(m[1]!, 'broadcast');
      const b = await broadcastProgress(pool, id);
      if (!b) throw new HttpError(404, `broadcast ${id} does not exist`);
      // Per-variant counts read the broadcast's ledger rows; only A/B broadcasts have them.
      const variants = b.variants ? ((await countDeliveries(pool, id)).variants ?? null) : null;
      // The report reads the whole ledger by variant: only where there is one to show (tracked or A/B).
      const report = b.track || (b.variants?.length ?? 0) >= 2 ? reports.view(pool, id, b.status) : null;
      return broadcastPage(ctx, b, variants, report);
    }
    if (path === '/compose') return composePage(ctx, emptyFields());
    if (path === '/health') {
      const [h, migrations, rateLimits] = await Promise.all([health(access, log), migrationState(pool).catch(() => null), readRateLimitState(pool)]);
      return healthPage(ctx, { health: h.body as HealthData['health'], migrations, rateLimits });
    }
    if (path === '/events/overview') {
      live.start(res, 2_000, async () => overviewLive(await readOverview(access, pool, rateLimited)));
      return null;
    }
    m = /^\/events\/broadcasts\/([^/]+)$/.exec(path);
    if (m) {
      const id = parseId(m[1]!, 'broadcast');
      live.start(res, 1_000, async () => {
        const b = await broadcastProgress(pool, id);
        return b ? { status: b.status, report: reports.settled(id, b.status), values: broadcastLive(b) } : null;
      });
      return null;
    }
    const subscriberPage = await subscribers.render(ctx, path, query, pool, res);
    if (subscriberPage !== undefined) return subscriberPage;
    throw new HttpError(404, 'no such page');
  }

  async function login(req: IncomingMessage, res: ServerResponse, method: string): Promise<void> {
    if (localOnly) return redirect(res, `${base}/`);
    if (method === 'GET') return sendHtml(res, 200, loginPage(base, null));
    // A login form posted from another site would log the operator into the attacker's session.
    if (req.headers['sec-fetch-site'] === 'cross-site' || (req.headers.origin !== undefined && !sameOriginAs(req))) throw new HttpError(403, 'the login form must be sent from this dashboard');
    const given = (await readForm(req)).get('token') ?? '';
    const address = req.socket.remoteAddress ?? 'unknown';
    const wait = throttle.retryAfter(address);
    if (wait > 0) throw new HttpError(429, `too many wrong tokens from this address; try again in ${wait} s`, { 'retry-after': String(wait) });
    const match = tokens.find(([token]) => sameSecret(given, token));
    if (!match) {
      throttle.failed(address);
      log.warn({ reason: given ? 'wrong token' : 'no token', address }, 'dashboard login refused');
      return sendHtml(res, 401, loginPage(base, 'That token is not accepted.'));
    }
    log.info({ role: match[1] }, 'dashboard login');
    redirect(res, `${base}/`, { 'set-cookie': sessions.issue(match[1]).setCookie });
  }

  async function post(req: IncomingMessage, res: ServerResponse, session: Session, path: string): Promise<void> {
    // An import's body is the file, read only once the token and the role have been checked.
    const upload = path === '/subscribers/import';
    const form = upload ? new URLSearchParams() : await readForm(req, path.startsWith('/compose') ? COMPOSE_FORM_BYTES : undefined);
    const csrf = String(req.headers['x-csrf-token'] ?? form.get('_csrf') ?? '');
    if (!csrf || !sameSecret(csrf, session.csrf)) throw new HttpError(403, 'the form has no valid CSRF token; reload the page and try again');
    if (path === '/logout') {
      return afterPost(req, res, `${base}/${localOnly ? '' : 'login'}`, { 'set-cookie': sessions.cleared() });
    }
    // Checking and counting a composed message changes nothing: a read-only session may ask too.
    if (path === '/compose/check') return void sendJson(res, 200, await checkCompose(access.pool() ?? noPool(), form, heavy));
    if (session.role !== 'admin') throw new HttpError(403, 'this session is read-only (logged in with the read-only token): it cannot change anything');
    const pool = access.pool();
    if (!pool) throw new HttpError(503, 'the queue is not running (no database connection)');
    if (upload) return afterPost(req, res, `${base}/subscribers/imports/${(await subscribers.upload(pool, req)).id}`);
    if (path === '/compose') return answerCompose(req, res, { base, session }, pool, form, log, (n) => sessions.noticeCookie(n));
    const outcome = await runAction(pool, path, form);
    if (!outcome) throw new HttpError(404, 'no such action');
    log.info({ action: path, outcome: outcome.notice.kind }, 'dashboard action');
    afterPost(req, res, `${base}${outcome.back}`, { 'set-cookie': sessions.noticeCookie(outcome.notice) });
  }

  const handler = ((req, res, _next) => {
    handle(req, res).catch((error: unknown) => {
      const status = error instanceof HttpError ? error.status : 500;
      const message = error instanceof HttpError ? error.message : 'internal server error; the daemon log has the details';
      if (status >= 500 || status === 403) log.warn({ method: req.method, url: req.url, status, reason: error instanceof HttpError ? error.message : errorMessage(error) }, 'dashboard request refused or failed');
      if (res.headersSent) return void res.end();
      sendHtml(res, status, errorPage(base, status, message), error instanceof HttpError ? error.headers : {});
      if (status === 413) req.resume();
    });
  }) as DashboardHandler;
  handler.closeStreams = () => {
    live.closeAll();
    subscribers.close();
  };
  return handler;
}

/**
 * Where to go after a POST: a 303 for a plain form; the page's script (X-Requested-With) gets the
 * place to go instead, since a fetch that followed the redirect would use up the notice shown once.
 */
function afterPost(req: IncomingMessage, res: ServerResponse, location: string, headers: Record<string, string> = {}): void {
  if (req.headers['x-requested-with'] === undefined) return redirect(res, location, headers);
  const body = JSON.stringify({ location });
  res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

function noPool(): never {
  throw new HttpError(503, 'the queue is not running (no database connection)');
}

function checkedToken(token: string, name: string): string {
  if (typeof token !== 'string' || token.trim() === '') throw new Error(`${name} must be a non-empty string`);
  return token;
}

function sameOriginAs(req: IncomingMessage): boolean {
  try {
    return new URL(req.headers.origin!).host === req.headers.host;
  } catch {
    return false;
  }
}
