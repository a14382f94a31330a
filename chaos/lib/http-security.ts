// The admin API and webhooks as an attacker would try them (issue 11): a web page's cross-site
// POST and a DNS-rebinding Host against a daemon without a token, a hand-inserted webhook job with
// a forged body, and huge payloads read back while the daemon's RSS is watched.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Pool } from 'pg';
import type { DaemonSlot, Fleet } from './daemons.js';
import { runBqctl } from './daemons.js';
import { until } from './util.js';

interface Answer {
  status: number | null;
  bytes: number;
  error?: string;
}

/** One request with exactly these headers (Host included), on a fresh connection. */
function request(port: number, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Answer> {
  return new Promise((resolve) => {
    const req = http.request({ agent: false, host: '127.0.0.1', port, method, path, headers, setHost: !('host' in headers), timeout: 30_000 }, (res) => {
      let bytes = 0;
      res.on('data', (c: Buffer) => (bytes += c.length));
      res.on('end', () => resolve({ status: res.statusCode ?? null, bytes }));
      res.on('error', (e) => resolve({ status: res.statusCode ?? null, bytes, error: e.message }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ status: null, bytes: 0, error: e.message }));
    req.end(body);
  });
}

export interface SecurityOptions {
  fleet: Fleet;
  /** The daemon with a token, whose RSS is watched while huge payloads are read back. */
  guarded: DaemonSlot;
  token: string;
  pool: Pool;
  databaseUrl: string;
  quick: boolean;
}

export async function securityChecks(o: SecurityOptions): Promise<{ failures: string[]; notes: string[]; count: number }> {
  const failures: string[] = [];
  const notes: string[] = [];
  let count = 0;
  const base = '/api/admin/queue';

  // A webhook receiver that only counts: nothing forged may ever reach it.
  let received = 0;
  const receiver = http.createServer((req, res) => {
    received++;
    req.resume();
    res.end();
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  // A second daemon without a token (the default), signing webhooks.
  const open = o.fleet.add('open', {
    http: true,
    env: { BQ_API_TOKEN: '', BQ_WEBHOOK_URL: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`, BQ_WEBHOOK_SECRET: 'chaos-webhook-secret-0123456789' },
  });
  try {
    await open.start();

    // --- cross-site POST and DNS rebinding against the tokenless daemon --------------------------
    const target = (await o.pool.query(`INSERT INTO broadcasts (title, message, audience, status) VALUES ('chaos: cross-site target', '{"text": "x"}', '{"chat_ids": [1]}', 'paused') RETURNING broadcast_id`)).rows[0].broadcast_id;
    const job = (await o.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, status, finished_at) VALUES ('chaos-nobody', 'cancelled', now()) RETURNING job_id`)).rows[0].job_id;
    const attacks: [string, string, Record<string, string>, string?][] = [
      ['POST', `${base}/broadcasts/${target}/cancel`, { origin: 'http://evil.example', 'content-type': 'text/plain' }, 'x'],
      ['POST', `${base}/broadcasts/${target}/cancel`, { origin: 'http://evil.example', 'content-type': 'application/x-www-form-urlencoded' }, 'a=1'],
      ['POST', `${base}/broadcasts/${target}/cancel`, { 'content-type': 'text/plain' }, 'x'],
      ['POST', `${base}/broadcasts/${target}/cancel`, { 'content-type': 'multipart/form-data; boundary=x' }, '--x--'],
      ['POST', `${base}/broadcasts/${target}/cancel`, { origin: 'null', 'content-type': 'application/json' }, '{}'],
      ['POST', `${base}/jobs/${job}/retry`, { host: 'evil.example', 'content-type': 'application/json' }, '{}'],
      ['GET', `${base}/status`, { host: 'evil.example' }],
      ['GET', `${base}/broadcasts/failed`, { host: `evil.example:${open.httpPort}` }],
      ['GET', '/metrics', { host: 'evil.example' }],
      ['GET', `${base}/status`, { origin: 'http://evil.example' }],
    ];
    const let_through: string[] = [];
    for (const [method, path, headers, body] of attacks) {
      const a = await request(open.httpPort, method, path, headers, body);
      count++;
      if (a.status !== 403 && a.status !== 415) let_through.push(`${method} ${path} ${JSON.stringify(headers)} → ${a.status ?? a.error}`);
    }
    const after = (await o.pool.query(`SELECT (SELECT status FROM broadcasts WHERE broadcast_id = $1) AS b, (SELECT status FROM broadcast_queue_jobs WHERE job_id = $2) AS j`, [target, job])).rows[0];
    if (let_through.length) failures.push(`tokenless admin API: ${let_through.length} cross-site or rebinding requests were not refused: ${let_through.join('; ')}`);
    if (after.b !== 'paused' || after.j !== 'cancelled') failures.push(`a refused request changed state: broadcast ${after.b}, job ${after.j}`);
    const local = await request(open.httpPort, 'POST', `${base}/jobs/${job}/retry`, { 'content-type': 'application/json' }, '{}');
    count++;
    if (local.status !== 200) failures.push(`tokenless admin API: a local JSON POST was not served (${local.status ?? local.error})`);
    notes.push(`tokenless admin API: ${attacks.length} cross-site / rebinding requests (foreign Origin, text/plain and form bodies, Host evil.example) all refused with 403/415, nothing changed; a local JSON POST answered ${local.status}`);

    // --- forged webhook jobs -------------------------------------------------------------------
    const forged = (await o.pool.query(
      `INSERT INTO broadcast_queue_jobs (job_type, payload, max_attempts)
       VALUES ('webhook', jsonb_build_object('event', 'broadcast.finished', 'broadcast', jsonb_build_object('broadcast_id', $1::bigint, 'status', 'completed', 'sent', 1000000)), 1),
              ('webhook', jsonb_build_object('event', 'broadcast.finished', 'broadcast_id', $1::bigint), 1)
       RETURNING job_id`,
      [target],
    )).rows.map((r) => r.job_id);
    count += forged.length;
    const settled = await until(async () => {
      const { rows } = await o.pool.query(`SELECT status, last_error FROM broadcast_queue_jobs WHERE job_id = ANY($1::bigint[]) AND status IN ('failed', 'completed')`, [forged]);
      return rows.length === forged.length ? rows : null;
    }, 60_000, 'the forged webhook jobs to finish').catch((e: Error) => e);
    if (settled instanceof Error) failures.push(`forged webhook jobs: ${settled.message}`);
    else {
      if (settled.some((r) => r.status !== 'failed')) failures.push(`a forged webhook job completed: ${JSON.stringify(settled)}`);
      notes.push(`forged webhook jobs: ${forged.length} hand-inserted, all failed (${JSON.stringify(String(settled[0]?.last_error ?? '').slice(0, 120))}), receiver got ${received} requests`);
    }
    if (received > 0) failures.push(`the webhook receiver got ${received} requests from forged jobs`);

    // --- huge payloads read back -----------------------------------------------------------------
    const jobs = o.quick ? 4 : 8;
    const inserted = await o.pool.query(
      `WITH ids AS (SELECT jsonb_agg(-1001000000000 - g) AS ids FROM generate_series(1, 1000000) g)
       INSERT INTO broadcast_queue_jobs (job_type, payload, status, attempts, finished_at, last_error)
       SELECT 'broadcast', jsonb_build_object('message', '{"text": "big"}'::jsonb, 'chat_ids', ids), 'failed', 1, now(), 'chaos: huge payload'
         FROM ids, generate_series(1, $1::int)
       RETURNING job_id`,
      [jobs],
    );
    const ids = inserted.rows.map((r) => r.job_id as string);
    const rssBefore = o.guarded.rssMb();
    let rssPeak = rssBefore ?? 0;
    let biggest = 0;
    const auth = { authorization: `Bearer ${o.token}` };
    const reads: [number, string, Record<string, string>][] = [];
    for (let i = 0; i < 3; i++) reads.push([o.guarded.httpPort, `${base}/broadcasts/failed?limit=500`, auth]);
    for (const id of ids) reads.push([o.guarded.httpPort, `${base}/jobs/${id}`, auth]);
    reads.push([open.httpPort, `${base}/broadcasts/failed?limit=500`, {}]);
    for (const [port, path, headers] of reads) {
      const a = await request(port, 'GET', path, headers);
      count++;
      if (a.status !== 200) failures.push(`GET ${path} answered ${a.status ?? a.error}`);
      biggest = Math.max(biggest, a.bytes);
      rssPeak = Math.max(rssPeak, o.guarded.rssMb() ?? 0);
    }
    const cli = await runBqctl(['list', '--json', '--limit', '100'], { DATABASE_URL: o.databaseUrl }, 60_000);
    count++;
    if (cli.code !== 0) failures.push(`bqctl list --json with huge payloads exited ${cli.code}: ${cli.stderr.slice(0, 200)}`);
    const growth = rssBefore === null ? null : rssPeak - rssBefore;
    // Read whole, one request held 8 × 20 MB of JSON: the daemon went from 97 MB to 1.03 GB.
    if (biggest > 1_000_000) failures.push(`a read returned ${biggest} bytes with ${jobs} huge payloads stored`);
    if (cli.stdout.length > 1_000_000) failures.push(`bqctl list --json printed ${cli.stdout.length} bytes`);
    if (growth !== null && growth > 150) failures.push(`the daemon's RSS grew by ${growth} MB while huge payloads were read back (${rssBefore} → ${rssPeak} MB)`);
    notes.push(`huge payloads: ${jobs} failed jobs of 1,000,000 chat ids (~20 MB each) read back by ${reads.length} requests and bqctl list: largest answer ${biggest} bytes, bqctl ${cli.stdout.length} bytes, daemon RSS ${rssBefore} → peak ${rssPeak} MB`);
    await o.pool.query(`DELETE FROM broadcast_queue_jobs WHERE job_id = ANY($1::bigint[])`, [ids]);
  } finally {
    receiver.close();
    receiver.closeAllConnections();
  }
  return { failures, notes, count };
}
