// The admin HTTP API under bad requests: bad ids, bad and huge bodies, no or wrong token. Every
// answer must come within 10 s and be below 500 (only /health may say 503, by design).
import http from 'node:http';

interface Req {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** '4xx': must be refused; 'ok': must be 2xx; 'any': anything below 500; 'health': 200 or 503. */
  expect: '4xx' | 'ok' | 'any' | 'health';
}

interface Answer {
  status: number | null;
  ms: number;
  error?: string;
}

function request(port: number, r: Req, timeoutMs = 10_000): Promise<Answer> {
  const began = Date.now();
  return new Promise((resolve) => {
    // agent: false: a fresh connection per request, so a socket the server closed after refusing a huge body is never reused.
    const req = http.request({ agent: false, host: '127.0.0.1', port, method: r.method, path: r.path, headers: { ...r.headers, ...(r.body !== undefined ? { 'content-length': String(Buffer.byteLength(r.body)) } : {}) }, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? null, ms: Date.now() - began }));
      res.on('error', (e) => resolve({ status: res.statusCode ?? null, ms: Date.now() - began, error: e.message }));
    });
    req.on('timeout', () => {
      req.destroy(new Error('timeout'));
    });
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ status: null, ms: Date.now() - began, error: e.code ?? e.message }));
    if (r.body !== undefined) req.end(r.body);
    else req.end();
  });
}

export async function httpChecks(port: number, token: string): Promise<{ failures: string[]; notes: string[]; count: number }> {
  const failures: string[] = [];
  const notes: string[] = [];
  const base = '/api/admin/queue';
  const probe = await request(port, { method: 'GET', path: `${base}/health`, expect: 'health' });
  if (probe.status === null) {
    notes.push(`admin HTTP API NOT TESTED: the daemon does not serve ${base}/health on BQ_HTTP_PORT ${port} (${probe.error}); the HTTP part of this scenario waits for it`);
    return { failures, notes, count: 0 };
  }
  const auth = { authorization: `Bearer ${token}` };
  const json = { ...auth, 'content-type': 'application/json' };
  const reqs: Req[] = [
    { method: 'GET', path: `${base}/health`, expect: 'health' },
    { method: 'POST', path: `${base}/health`, expect: '4xx' },
    { method: 'GET', path: `${base}/status`, expect: '4xx' },
    { method: 'GET', path: `${base}/status`, headers: { authorization: 'Bearer wrong-token-wrong-token' }, expect: '4xx' },
    { method: 'GET', path: `${base}/status`, headers: { authorization: 'Bearer ' }, expect: '4xx' },
    { method: 'GET', path: `${base}/status`, headers: { authorization: `Basic ${Buffer.from(`x:${token}`).toString('base64')}` }, expect: '4xx' },
    { method: 'GET', path: `${base}/status`, headers: { authorization: token }, expect: '4xx' },
    { method: 'GET', path: `${base}/status`, headers: { authorization: `Bearer ${token}x` }, expect: '4xx' },
    { method: 'GET', path: `${base}/status`, headers: { authorization: `Bearer ${token.slice(0, -1)}` }, expect: '4xx' },
    { method: 'GET', path: `${base}/status`, headers: { authorization: `Bearer ${'x'.repeat(10_000)}` }, expect: '4xx' },
    { method: 'GET', path: '/metrics', expect: '4xx' },
    { method: 'GET', path: `${base}/jobs/1`, expect: '4xx' },
    { method: 'POST', path: `${base}/jobs/1/retry`, expect: '4xx' },
    { method: 'GET', path: `${base}/status`, headers: auth, expect: 'ok' },
    { method: 'GET', path: `${base}/statistics`, headers: auth, expect: 'ok' },
    { method: 'GET', path: '/metrics', headers: auth, expect: 'ok' },
    { method: 'GET', path: `${base}/broadcasts/failed`, headers: auth, expect: 'ok' },
    { method: 'GET', path: `${base}/broadcasts/failed?limit=-1`, headers: auth, expect: 'any' },
    { method: 'GET', path: `${base}/broadcasts/failed?limit=abc&since=garbage`, headers: auth, expect: 'any' },
    { method: 'GET', path: `${base}/nonexistent`, headers: auth, expect: '4xx' },
    { method: 'GET', path: `${base}/../../../etc/passwd`, headers: auth, expect: '4xx' },
    { method: 'DELETE', path: `${base}/jobs/1`, headers: auth, expect: '4xx' },
    { method: 'PUT', path: `${base}/status`, headers: auth, expect: '4xx' },
    { method: 'GET', path: `${base}/status`, headers: { ...auth, 'x-big': 'h'.repeat(100_000) }, expect: '4xx' },
  ];
  const ids = ['abc', '-1', '0', '1.5', '1e3', '99999999999999999999999', '9007199254740993', '%00', '%27%20OR%201%3D1', '%F0%9F%A4%96', '%E0%A4%A', '987654321', '1%2F..%2F..', ''];
  for (const id of ids) {
    for (const kind of ['jobs', 'broadcasts']) reqs.push({ method: 'GET', path: `${base}/${kind}/${id}`, headers: auth, expect: '4xx' });
    reqs.push({ method: 'POST', path: `${base}/jobs/${id}/retry`, headers: auth, expect: '4xx' });
    reqs.push({ method: 'POST', path: `${base}/jobs/${id}/cancel`, headers: auth, expect: '4xx' });
    for (const action of ['pause', 'resume', 'cancel']) reqs.push({ method: 'POST', path: `${base}/broadcasts/${id}/${action}`, headers: auth, expect: '4xx' });
  }
  for (const body of ['{bad json', '[]', 'null', '"string"', '{"a":' + '['.repeat(50_000), '\u0000\u0001binary']) {
    reqs.push({ method: 'POST', path: `${base}/jobs/987654321/retry`, headers: json, body, expect: '4xx' });
    reqs.push({ method: 'POST', path: `${base}/broadcasts/987654321/pause`, headers: json, body, expect: '4xx' });
  }
  reqs.push({ method: 'POST', path: `${base}/jobs/987654321/retry`, headers: json, body: Buffer.alloc(20 * 1024 * 1024, 0x61), expect: '4xx' });
  reqs.push({ method: 'POST', path: `${base}/broadcasts/987654321/cancel`, headers: { ...auth, 'content-type': 'text/plain' }, body: 'x'.repeat(2 * 1024 * 1024), expect: '4xx' });

  const bad: string[] = [];
  const seen = new Map<string, number>();
  for (const r of reqs) {
    const a = await request(port, r);
    const shown = `${r.method} ${r.path.length > 70 ? `${r.path.slice(0, 70)}…` : r.path}${r.headers?.authorization ? '' : ' (no token)'}${r.body !== undefined ? ` with a ${Buffer.byteLength(r.body)}-byte body` : ''}`;
    seen.set(String(a.status ?? a.error), (seen.get(String(a.status ?? a.error)) ?? 0) + 1);
    if (a.status === null) {
      // A huge body may be cut off by the server answering early: that is a refusal, not a hang.
      if (a.error === 'timeout' || a.ms >= 10_000) bad.push(`${shown}: no answer within 10 s (hang)`);
      // Node's own limits (16 KB of headers, a body refused early) may close the socket before
      // the 431 or 413 is read: a refusal too.
      else if (!((r.body && Buffer.byteLength(r.body) > 1_000_000) || JSON.stringify(r.headers ?? {}).length > 16_000) || !/EPIPE|ECONNRESET/.test(a.error ?? '')) bad.push(`${shown}: ${a.error}`);
    } else if (a.status >= 500 && !(r.expect === 'health' && a.status === 503)) bad.push(`${shown}: ${a.status}`);
    else if (r.expect === '4xx' && (a.status < 400 || a.status >= 500)) bad.push(`${shown}: ${a.status}, expected 4xx`);
    else if (r.expect === 'ok' && (a.status < 200 || a.status >= 300)) bad.push(`${shown}: ${a.status}, expected 2xx`);
  }
  // Fifty at once.
  const burst = await Promise.all(Array.from({ length: 50 }, (_v, i) => request(port, { method: 'GET', path: i % 2 ? `${base}/status` : `${base}/jobs/${i}`, headers: auth, expect: 'any' })));
  const burstBad = burst.filter((a) => a.status === null || a.status >= 500);
  if (burstBad.length) bad.push(`${burstBad.length} of 50 concurrent requests failed: ${burstBad.slice(0, 3).map((a) => a.status ?? a.error).join(', ')}`);
  if (bad.length) failures.push(`admin HTTP API: ${bad.length} of ${reqs.length + 50} requests misbehaved: ${bad.slice(0, 10).join('; ')}${bad.length > 10 ? ' …' : ''}`);
  notes.push(`admin HTTP API: ${reqs.length + 50} requests, answers by status: ${[...seen].map(([s, n]) => `${s} × ${n}`).join(', ')}`);
  return { failures, notes, count: reqs.length + 50 };
}
