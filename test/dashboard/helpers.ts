// A dashboard client for tests over plain HTTP: it keeps the session cookie and reads the CSRF
// token from the page, as the browser does.
import type { TestDatabase } from '../helpers/db.js';

export const ADMIN_TOKEN = 'dashboard-admin-token-0123456789';
export const READ_TOKEN = 'dashboard-read-token-0123456789';

export interface Answer {
  status: number;
  headers: Headers;
  text: string;
}

export class DashboardClient {
  /** The cookies the dashboard set (the session, and a notice after an action), as a browser keeps them. */
  readonly cookies = new Map<string, string>();
  constructor(readonly base: string) {}

  /** The Cookie header this client sends; null before any cookie was set. */
  get cookie(): string | null {
    return this.cookies.size ? [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ') : null;
  }

  async request(method: string, path: string, options: { form?: Record<string, string>; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
    const res = await fetch(`${this.base}${path}`, {
      method,
      redirect: 'manual',
      headers: { ...(this.cookie ? { cookie: this.cookie } : {}), ...(options.form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}), ...options.headers },
      body: options.form ? new URLSearchParams(options.form).toString() : options.body,
    });
    for (const setCookie of res.headers.getSetCookie()) {
      const pair = setCookie.split(';')[0]!;
      const eq = pair.indexOf('=');
      if (/Max-Age=0(;|$)/.test(setCookie)) this.cookies.delete(pair.slice(0, eq));
      else this.cookies.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
    return { status: res.status, headers: res.headers, text: await res.text() };
  }

  get = (path: string) => this.request('GET', path);

  async login(token: string): Promise<Answer> {
    return this.request('POST', '/login', { form: { token } });
  }

  /** The CSRF token of the session, as a page carries it. */
  async csrf(): Promise<string> {
    const page = await this.get('/health');
    const m = /<meta name="bq-csrf" content="([^"]+)">/.exec(page.text);
    if (!m) throw new Error(`no CSRF token on the page (${page.status})`);
    return m[1]!;
  }

  async post(path: string, csrf: string | null): Promise<Answer> {
    return this.request('POST', path, { form: csrf === null ? {} : { _csrf: csrf } });
  }
}

/** A job of a type no daemon runs, set to `status` (failed jobs get an error). */
export async function insertFinishedJob(db: TestDatabase, status: string, payload: unknown, lastError: string | null = null, jobType = 'dashboard-test'): Promise<number> {
  const { rows } = await db.pool.query(
    `INSERT INTO broadcast_queue_jobs (job_type, queue, payload) VALUES ($1, 'elsewhere', $2) RETURNING job_id`,
    [jobType, JSON.stringify(payload)],
  );
  const id = rows[0].job_id;
  if (status !== 'pending') {
    await db.pool.query(
      `UPDATE broadcast_queue_jobs SET status = $2, attempts = 1, last_error = $3, started_at = now(), finished_at = now(),
              locked_by = CASE WHEN $2 = 'processing' THEN 'nobody' END WHERE job_id = $1`,
      [id, status, lastError],
    );
  }
  return id;
}
