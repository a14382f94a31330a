// The standalone server: the admin API at /api/admin/queue/*, GET /metrics, and the web dashboard
// at every other path (unless turned off), on node:http with request timeouts, refusing a
// non-loopback host without a token.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { isLoopback } from '../config/load.js';
import { errorMessage, type Logger } from '../log.js';
import type { AdminHandler, AdminHandlerOptions } from './admin.js';
import type { DashboardHandler, DashboardOptions } from './dashboard/handler.js';
import { requestGuard, type GuardOptions } from './guard.js';
import type { Metrics } from './metrics.js';
import { guardedBy, send } from './response.js';

/** Where startAdminServer mounts the admin API. */
export const ADMIN_PATH = '/api/admin/queue';

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
  /**
   * The web dashboard at / (http/dashboard/): false turns it off; readOnlyToken adds a token that
   * logs in to look without changing anything. Defaults to on, with apiToken as its admin login.
   */
  dashboard?: false | { readOnlyToken?: string };
}

export interface AdminServer {
  /** The server's root, e.g. http://127.0.0.1:3000 (the API is under /api/admin/queue). */
  url: string;
  server: http.Server;
  /** Stops accepting, lets requests in flight finish (for at most a few seconds), then resolves. */
  close(): Promise<void>;
}

/** What startAdminServer serves: a BroadcastQueue's admin handler, dashboard and metrics. */
export interface AdminServable {
  readonly log: Logger;
  adminHandler(options?: AdminHandlerOptions): AdminHandler;
  dashboardHandler(options?: DashboardOptions): DashboardHandler;
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
  const dashboard = options.dashboard === false ? null : queue.dashboardHandler({ ...access, readOnlyToken: options.dashboard?.readOnlyToken, log: options.log });
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
        // /api/… stays JSON for API clients that took a wrong turn; the rest is the dashboard's.
        if (dashboard && path !== '/api' && !path.startsWith('/api/')) return dashboard(req, res);
        send(res, 404, { error: `no such route; the admin API is under ${ADMIN_PATH}/ and metrics at /metrics (the dashboard is turned off)` });
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
        dashboard?.closeStreams();
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
