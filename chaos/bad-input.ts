// Scenario 4, bad input: more than a thousand generated job rows inserted by SQL (wrong types,
// missing fields, oversized text, deep nesting, odd unicode, SQL-looking strings, negative and huge
// ids, unknown job types, non-object payloads, bad queue names). Each must be refused by
// PostgreSQL with a clear message, fail its job with a clear last_error on the first attempt, run
// (odd but valid input, delivered verbatim), or — unknown job types and queues — stay pending and be
// listed as unrunnable. The daemon must never stop. Then the same spirit for bqctl (bad flags, ids
// and files: a clear message, a non-zero exit, no stack trace, no hang) and the admin HTTP API
// (bad ids, bodies, huge bodies, no or wrong token: 4xx, never 5xx, never a hang; a cross-site POST
// or a rebinding Host against a tokenless daemon, a forged webhook job, huge payloads read back).
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { BroadcastQueue } from '../src/broadcast-queue.js';
import type { ChaosContext } from './lib/context.js';
import { CHAOS_TOKEN, startStandIn } from './lib/context.js';
import { Fleet, runBqctl, type CliRun } from './lib/daemons.js';
import { generateCases, type Case, type Outcome } from './lib/payloads.js';
import { absorbFleet, dumpDatabase, emptyResult, type ScenarioResult } from './lib/report.js';
import { seededRandom, until } from './lib/util.js';
import { httpChecks } from './lib/http-checks.js';
import { bqctlStreamChecks } from './lib/bqctl-stream-checks.js';
import { securityChecks } from './lib/http-security.js';

const API_TOKEN = 'chaos-admin-token-0123456789';
/** A last_error a person cannot act on: an internal exception leaking out, or no words at all. */
const UNCLEAR = /TypeError|ReferenceError|RangeError|SyntaxError|Cannot read prop|undefined is not|is not a function|\[object Object\]|\[native code\]|Maximum call stack|^\s*$|^undefined$|\n\s+at /;
const STACK = /\n\s+at [^\n]+:\d+:\d+/;

interface Observed {
  c: Case;
  outcome: Outcome | 'pending' | 'processing' | 'missing';
  error?: string;
  attempts?: number;
  jobId?: string;
}

export async function badInput(ctx: ChaosContext): Promise<ScenarioResult> {
  const result = emptyResult('4. bad input');
  const began = Date.now();
  const server = await ctx.server();
  const db = await server.createDatabase('chaos_bad_input');
  const { api, apiRoot } = await startStandIn();
  const fleet = new Fleet({ databaseUrl: db.url, apiRoot, token: CHAOS_TOKEN, rateLimit: 1000, concurrency: 8, http: true, env: { BQ_API_TOKEN: API_TOKEN } }, ctx.logDir, 'bad-input');
  const daemon = fleet.add('a');
  let chat = 4_000_000;
  const cases = generateCases(seededRandom(ctx.seed ^ 0xbad), () => ++chat);
  let stopped = false;
  try {
    await fleet.startAll();
    ctx.say(`  ${cases.length} generated rows`);
    const observed: Observed[] = [];
    const refusals = new Map<string, number>();
    const insert = async (c: Case) => {
      try {
        const { rows } = await db.pool.query(c.sql, c.params);
        observed.push({ c, outcome: 'pending', jobId: String(rows[0].job_id) });
      } catch (error) {
        const e = error as { message?: string; code?: string; constraint?: string; detail?: string };
        const message = `${e.code ?? '?'} ${e.message ?? String(error)}${e.detail ? ` (${e.detail})` : ''}`;
        refusals.set(message.slice(0, 160), (refusals.get(message.slice(0, 160)) ?? 0) + 1);
        observed.push({ c, outcome: 'refused', error: message });
      }
    };
    for (const c of cases.filter((x) => !x.late)) await insert(c);
    await settle(db.pool, 180_000).catch((e: Error) => result.failures.push(`the bad rows did not settle: ${e.message}`));
    // Ids past 2^53 last: they may wedge the daemon's writes.
    for (const c of cases.filter((x) => x.late)) await insert(c);
    await settle(db.pool, 20_000).catch((e: Error) => result.failures.push(`rows with ids past 2^53 did not settle: ${e.message}`));

    // What became of each row.
    const { rows } = await db.pool.query(`SELECT job_id::text AS id, queue, job_type, status, attempts, last_error, run_at > now() AS future FROM broadcast_queue_jobs`);
    const byId = new Map(rows.map((r) => [r.id as string, r]));
    const status = await new BroadcastQueue({ connectionString: db.url, sweepMs: 10_000, rescueAfterMs: 30_000 }).getStatus().catch((e: Error) => e);
    const unrunnableListed = status instanceof Error ? [] : status.unrunnable;
    if (status instanceof Error) result.failures.push(`getStatus() failed: ${status.message}`);
    const mismatches: string[] = [];
    const unclear: string[] = [];
    const retried: string[] = [];
    const wrongText: string[] = [];
    await api.sync();
    const deliveredText = new Map(api.delivered.map((d) => [Number(d.chatId), d.text ?? d.caption ?? '']));
    for (const o of observed) {
      if (o.outcome === 'refused') {
        if (!o.error || o.error.length < 10) unclear.push(`${o.c.label}: refused with "${o.error}"`);
      } else {
        const row = byId.get(o.jobId!);
        if (!row) o.outcome = 'missing';
        else {
          o.attempts = row.attempts;
          o.error = row.last_error ?? undefined;
          if (row.status === 'completed' && o.c.category === 'columns' && /status completed/.test(o.c.label)) o.outcome = 'inert';
          else if (row.status === 'completed') o.outcome = 'completed';
          else if (row.status === 'failed' && /status failed/.test(o.c.label)) o.outcome = 'inert';
          else if (row.status === 'failed') o.outcome = 'failed';
          else if (row.status === 'cancelled') o.outcome = 'inert';
          else if (row.status === 'pending' && row.future) o.outcome = 'inert';
          else if (row.status === 'pending') o.outcome = unrunnableListed.some((u) => u.queue === row.queue && u.jobType === row.job_type) ? 'unrunnable' : 'pending';
          else o.outcome = row.status;
        }
      }
      if (!(o.c.expect as string[]).includes(o.outcome)) mismatches.push(`${o.c.label}: expected ${o.c.expect.join(' or ')}, got ${o.outcome}${o.error ? ` (${o.error.slice(0, 200)})` : ''}${o.attempts ? ` after ${o.attempts} attempt(s)` : ''}`);
      if (o.outcome === 'failed') {
        if (UNCLEAR.test(o.error ?? '')) unclear.push(`${o.c.label}: last_error "${(o.error ?? '').slice(0, 200)}"`);
        if (o.c.payloadError && (o.attempts ?? 0) > 1) retried.push(`${o.c.label}: failed only after ${o.attempts} attempts: ${(o.error ?? '').slice(0, 160)}`);
      }
      if (o.outcome === 'completed' && o.c.delivers) {
        const got = deliveredText.get(o.c.delivers.chatId);
        if (got !== o.c.delivers.text) wrongText.push(`${o.c.label}: chat ${o.c.delivers.chatId} received ${got === undefined ? 'nothing' : JSON.stringify(got.slice(0, 60))}, expected ${JSON.stringify(o.c.delivers.text.slice(0, 60))}`);
      }
    }
    const count = (k: string) => observed.filter((o) => o.outcome === k).length;
    const stuck = observed.filter((o) => o.outcome === 'pending' || o.outcome === 'processing' || o.outcome === 'missing');
    result.lost = stuck.length + wrongText.filter((w) => /received nothing/.test(w)).length;
    result.duplicates = [...new Map(api.delivered.map((d) => [Number(d.chatId), 0])).keys()].filter((c) => api.delivered.filter((d) => Number(d.chatId) === c).length > 1 && ![...cases].some((x) => x.label.includes('duplicate') && x.delivers?.chatId === c)).length;
    if (mismatches.length) result.failures.push(`${mismatches.length} rows ended otherwise than expected: ${mismatches.slice(0, 12).join('; ')}${mismatches.length > 12 ? ' …' : ''}`);
    if (unclear.length) result.failures.push(`${unclear.length} unclear messages: ${unclear.slice(0, 6).join('; ')}`);
    if (retried.length) result.failures.push(`${retried.length} bad payloads were retried instead of failing at once: ${retried.slice(0, 4).join('; ')}`);
    if (wrongText.length) result.failures.push(`${wrongText.length} messages not delivered verbatim: ${wrongText.slice(0, 4).join('; ')}`);
    if (!daemon.running) result.failures.push('the daemon stopped');
    result.notes.push(`${cases.length} rows: ${count('refused')} refused by PostgreSQL, ${count('failed')} failed their job, ${count('completed')} ran, ${count('unrunnable')} pending and listed unrunnable, ${count('inert')} inert as written, ${stuck.length} stuck`);
    result.notes.push(`PostgreSQL's refusals: ${[...refusals].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([m, n]) => `${n} × "${m}"`).join('; ')}`);
    const errorsSample = [...new Set(observed.filter((o) => o.outcome === 'failed').map((o) => (o.error ?? '').slice(0, 120)))].slice(0, 8);
    result.notes.push(`sample last_error values: ${errorsSample.map((e) => JSON.stringify(e)).join('; ')}`);
    await writeFile(path.join(ctx.logDir, 'bad-input-cases.txt'), observed.map((o) => `${o.outcome}\t${o.c.expect.join('|')}\t${o.c.label}\t${(o.error ?? '').slice(0, 300).replace(/\s+/g, ' ')}`).join('\n'));
    result.notes.push('every case with its outcome and message: logs/bad-input-cases.txt');

    // bqctl.
    const cli = await bqctlChecks(db.url, ctx);
    result.failures.push(...cli.failures);
    result.notes.push(...cli.notes);
    // bqctl's output through pipes, and imports with NUL, over-long and unclosed-quote rows.
    const streams = await bqctlStreamChecks(db.pool, db.url, ctx.workDir);
    result.failures.push(...streams.failures);
    result.notes.push(...streams.notes);
    // The admin HTTP API.
    const http = await httpChecks(daemon.httpPort, API_TOKEN);
    result.failures.push(...http.failures);
    result.notes.push(...http.notes);
    // Cross-site POST, rebinding Host, forged webhook jobs, huge payloads read back (issue 11).
    const security = await securityChecks({ fleet, guarded: daemon, token: API_TOKEN, pool: db.pool, databaseUrl: db.url, quick: ctx.quick });
    result.failures.push(...security.failures);
    result.notes.push(...security.notes);
    if (!daemon.running) result.failures.push('the daemon stopped during the bqctl or HTTP checks');

    result.faults = `${cases.length} bad rows by SQL, ${cli.count + streams.count} bqctl runs, ${http.count + security.count} HTTP requests and forged jobs`;
    if (result.failures.length) await dumpDatabase(db.pool, path.join(ctx.logDir, `${db.name}.json`));
    const rss = fleet.rss();
    await fleet.stopAll();
    stopped = true;
    absorbFleet(result, fleet, rss);
  } finally {
    if (!stopped) await fleet.killAll();
    await api.stop();
    await db.drop();
    result.durationMs = Date.now() - began;
  }
  return result;
}

/** Waits until nothing is processing and no runnable job (send or broadcast, on our queue) is due. */
async function settle(pool: { query: (sql: string) => Promise<{ rows: { n: number }[] }> }, timeoutMs: number): Promise<void> {
  await until(async () => {
    const { rows } = await pool.query(`SELECT count(*)::int AS n FROM broadcast_queue_jobs
       WHERE status = 'processing' OR (status = 'pending' AND queue = 'broadcasts' AND job_type IN ('send', 'broadcast') AND run_at <= now() + interval '15 seconds')`);
    return rows[0]!.n === 0 ? true : null;
  }, timeoutMs, 'every runnable bad row to finish', 500);
}

interface CliCase {
  args: string[];
  /** 'fail': must exit non-zero with a message; 'any': any documented exit code, but no stack trace or hang. */
  expect: 'fail' | 'ok' | 'any';
  stdin?: string;
}

async function bqctlChecks(databaseUrl: string, ctx: ChaosContext): Promise<{ failures: string[]; notes: string[]; count: number }> {
  const failures: string[] = [];
  const notes: string[] = [];
  const env = { DATABASE_URL: databaseUrl };
  const help = await runBqctl(['--help'], env);
  const commandsSection = help.stdout.split(/^Commands:$/m)[1]?.split(/^\S/m)[0] ?? '';
  const listed = new Set([...commandsSection.matchAll(/^ {2}([a-z-]+)/gm)].map((m) => m[1]!));
  const wanted = ['status', 'list', 'show', 'retry', 'cancel', 'enqueue', 'broadcast', 'watch', 'subscribers', 'workers', 'doctor', 'migrate'];
  const missing = wanted.filter((w) => !listed.has(w));
  if (help.code !== 0) failures.push(`bqctl --help exited ${help.code}: ${help.stderr.slice(0, 200)}`);
  if (missing.length) notes.push(`bqctl NOT TESTED for: ${missing.join(', ')} (not listed by bqctl --help yet)`);
  const files = path.join(ctx.workDir, 'bqctl-files');
  await mkdir(files, { recursive: true });
  const file = async (name: string, content: string | Buffer) => {
    const p = path.join(files, name);
    await writeFile(p, content);
    return p;
  };
  const badJson = await file('bad.json', '{"text": "unterminated');
  const arrayJson = await file('array.json', '[1, 2, 3]');
  const emptyFile = await file('empty.json', '');
  const binary = await file('binary.bin', Buffer.from(Array.from({ length: 4096 }, (_v, i) => (i * 7919) % 256)));
  const hugeJson = await file('huge.json', JSON.stringify({ text: 'x'.repeat(5_000_000) }));
  const deepJson = await file('deep.json', '['.repeat(100_000) + ']'.repeat(100_000));
  const badCsv = await file('bad.csv', 'chat_id,language_code,tags\nabc,en,vip\n1.5,de,\n99999999999999999999,en,\n,,\n-0,xx,"unclosed\n');
  const badJsonl = await file('bad.jsonl', '{"chat_id": "abc"}\nnot json\n{"chat_id": 1e400}\n[1,2]\n{"chat_id": 5, "tags": "vip"}\n');
  const badIds = ctx.quick ? ['abc', '-1', '99999999999999999999999', '987654321'] : ['abc', '-1', '0', '1.5', '1e3', '99999999999999999999999', '', '1;DROP TABLE broadcast_queue_jobs', '0x10', '987654321'];
  const cases: CliCase[] = [
    { args: ['--bogus'], expect: 'fail' },
    { args: ['nosuchcommand'], expect: 'fail' },
    { args: ['--version'], expect: 'ok' },
    { args: ['status', '--json'], expect: 'ok' },
    { args: ['status', 'extra-argument'], expect: 'fail' },
    { args: ['status', '--database-url', 'not a url'], expect: 'fail' },
    { args: ['status', '--database-url', 'postgres://nobody:wrong@127.0.0.1:1/none'], expect: 'fail' },
    { args: ['status', '--log-level', 'loud'], expect: 'fail' },
  ];
  for (const command of [...listed].filter((c) => c !== 'help')) cases.push({ args: [command, '--bogus-flag'], expect: 'fail' }, { args: [command, '--help'], expect: 'ok' });
  for (const id of badIds) {
    cases.push({ args: ['show', id], expect: 'fail' }, { args: ['retry', id], expect: 'fail' }, { args: ['cancel', id], expect: 'fail' }, { args: ['watch', id], expect: 'fail' });
    for (const sub of ['show', 'pause', 'resume', 'cancel', 'resend']) cases.push({ args: ['broadcast', sub, id], expect: 'fail' });
  }
  cases.push(
    { args: ['show'], expect: 'fail' },
    { args: ['retry'], expect: 'fail' },
    { args: ['list', '--status', 'bogus'], expect: 'fail' },
    { args: ['list', '--since', 'the day before yesterday'], expect: 'fail' },
    { args: ['list', '--limit', '-5'], expect: 'fail' },
    { args: ['list', '--limit', 'many'], expect: 'fail' },
    { args: ['retry', '--failed', '--since', 'yesterday-ish'], expect: 'fail' },
    { args: ['retry', '--failed', '--limit', '0'], expect: 'fail' },
    { args: ['enqueue', 'frobnicate'], expect: 'fail' },
    { args: ['enqueue', 'send', '--chat', 'abc', '--text', 'x'], expect: 'fail' },
    { args: ['enqueue', 'send', '--chat', '0', '--text', 'x'], expect: 'fail' },
    { args: ['enqueue', 'send', '--chat', '99999999999999999999', '--text', 'x'], expect: 'fail' },
    { args: ['enqueue', 'send', '--chat', '1'], expect: 'fail' },
    { args: ['enqueue', 'send', '--text', 'x'], expect: 'fail' },
    { args: ['enqueue', 'send', '--chat', '1', '--text', ''], expect: 'fail' },
    { args: ['enqueue', 'send', '--chat', '1', '--text', 'a'.repeat(5000)], expect: 'fail' },
    { args: ['enqueue', 'send', '--chat', '1', '--text', 'x', '--parse-mode', 'XML'], expect: 'fail' },
    { args: ['enqueue', 'send', '--chat', '1', '--text', 'x', '--priority', 'high'], expect: 'fail' },
    { args: ['enqueue', 'send', '--chat', '1', '--text', 'x', '--priority', '99999999999'], expect: 'fail' },
    { args: ['enqueue', 'send', '--chat', '1', '--text', 'x', '--run-at', 'not a date'], expect: 'fail' },
    { args: ['enqueue', 'send', '--chat', '1', '--text', 'x', '--max-attempts', '0'], expect: 'fail' },
    { args: ['enqueue', 'send', '--chat', '1', '--text', 'x', '--queue', ''], expect: 'fail' },
    { args: ['enqueue', 'send', '--chat', '1', '--text', 'x', '--queue', "q'; DROP TABLE x;--"], expect: 'fail' },
    { args: ['enqueue', 'send', '--chat', '1', '--json-file', badJson], expect: 'fail' },
    { args: ['enqueue', 'send', '--chat', '1', '--json-file', arrayJson], expect: 'fail' },
    { args: ['enqueue', 'send', '--chat', '1', '--json-file', emptyFile], expect: 'fail' },
    { args: ['enqueue', 'send', '--chat', '1', '--json-file', binary], expect: 'fail' },
    { args: ['enqueue', 'send', '--chat', '1', '--json-file', hugeJson], expect: 'fail' },
    { args: ['enqueue', 'send', '--chat', '1', '--json-file', deepJson], expect: 'fail' },
    { args: ['enqueue', 'send', '--chat', '1', '--json-file', path.join(files, 'does-not-exist.json')], expect: 'fail' },
    { args: ['enqueue', 'send', '--chat', '1', '--json-file', files], expect: 'fail' },
    { args: ['enqueue', 'broadcast', '--broadcast-id', 'abc'], expect: 'fail' },
    { args: ['enqueue', 'broadcast', '--broadcast-id', '-4'], expect: 'fail' },
    { args: ['broadcast', 'create', '--text', 'x', '--segment', '{bad json'], expect: 'fail' },
    { args: ['broadcast', 'create', '--text', 'x', '--segment', '[]'], expect: 'fail' },
    { args: ['broadcast', 'create', '--text', 'x', '--segment', '{"bogus": 1}'], expect: 'fail' },
    { args: ['broadcast', 'create', '--text', 'x', '--chats', '1,abc,3'], expect: 'fail' },
    { args: ['broadcast', 'create', '--text', 'x', '--chats', ''], expect: 'fail' },
    { args: ['broadcast', 'create', '--text', ''], expect: 'fail' },
    { args: ['broadcast', 'create', '--text', 'x', '--frequency-cap', '-1'], expect: 'fail' },
    { args: ['broadcast', 'create', '--text', 'x', '--variants-file', badJson], expect: 'fail' },
    { args: ['broadcast', 'create', '--text', 'x', '--chats-file', binary], expect: 'fail' },
    { args: ['broadcast', 'create', '--message-file', deepJson], expect: 'fail' },
    { args: ['subscribers', 'import', path.join(files, 'does-not-exist.csv')], expect: 'fail' },
    { args: ['subscribers', 'import', files], expect: 'fail' },
    { args: ['subscribers', 'import', binary], expect: 'fail' },
    { args: ['subscribers', 'import', '--strict', badCsv], expect: 'fail' },
    { args: ['subscribers', 'import', '--strict', badJsonl], expect: 'fail' },
    { args: ['subscribers', 'import', badCsv], expect: 'any' },
    { args: ['subscribers', 'import', badJsonl], expect: 'any' },
    { args: ['subscribers', 'import', '--format', 'xml', badCsv], expect: 'fail' },
    { args: ['subscribers', 'import', '--batch-size', '0', badCsv], expect: 'fail' },
    { args: ['subscribers', 'import', '--format', 'jsonl'], expect: 'any', stdin: 'not json at all\n' },
    { args: ['subscribers', 'count', '--segment', '{bad'], expect: 'fail' },
    { args: ['cleanup', '--days', '-3'], expect: 'fail' },
    { args: ['cleanup', '--days', 'abc'], expect: 'fail' },
  );
  const runs: CliRun[] = [];
  const bad: string[] = [];
  // Only commands bqctl lists: a missing one is reported above, not counted as a pass.
  const applicable = cases.filter((c) => c.args[0]!.startsWith('-') || c.args[0] === 'nosuchcommand' || listed.has(c.args[0]!));
  for (const c of applicable) {
    const r = await runBqctl(c.args, env, 20_000, c.stdin);
    runs.push(r);
    const shown = `bqctl ${c.args.map((a) => (a.length > 40 ? `${a.slice(0, 40)}…` : a)).join(' ')}`;
    const out = `${r.stderr}${r.stdout}`;
    if (r.timedOut) bad.push(`${shown}: no answer within 20 s (killed)`);
    else if (STACK.test(out)) bad.push(`${shown}: printed a stack trace: ${out.slice(0, 300)}`);
    else if (r.code === null || ![0, 1, 2, 78].includes(r.code)) bad.push(`${shown}: exit ${r.code ?? r.signal} (documented: 0, 1, 2, 78)`);
    else if (c.expect === 'fail' && r.code === 0) bad.push(`${shown}: exit 0 for bad input; printed ${JSON.stringify(out.slice(0, 160))}`);
    else if (c.expect === 'fail' && out.trim() === '') bad.push(`${shown}: exit ${r.code} with no message at all`);
    else if (c.expect === 'fail' && UNCLEAR.test(r.stderr.trim() ? r.stderr : r.stdout)) bad.push(`${shown}: unclear message ${JSON.stringify(r.stderr.slice(0, 200))}`);
    else if (c.expect === 'ok' && r.code !== 0) bad.push(`${shown}: exit ${r.code}: ${r.stderr.slice(0, 200)}`);
  }
  if (bad.length) failures.push(`bqctl: ${bad.length} of ${runs.length} runs misbehaved: ${bad.slice(0, 10).join('; ')}${bad.length > 10 ? ' …' : ''}`);
  await writeFile(path.join(ctx.logDir, 'bqctl-runs.txt'), runs.map((r) => `exit ${r.code}${r.timedOut ? ' TIMEOUT' : ''} ${r.ms} ms\tbqctl ${r.args.map((a) => a.slice(0, 60)).join(' ')}\n\tstderr: ${r.stderr.trim().slice(0, 400).replace(/\n/g, '\n\t')}\n\tstdout: ${r.stdout.trim().slice(0, 200).replace(/\n/g, '\n\t')}`).join('\n'));
  const sample = runs.filter((r) => r.code !== 0 && r.stderr.trim()).slice(0, 4).map((r) => `\`bqctl ${r.args.slice(0, 3).join(' ')}\` → ${r.code}: ${r.stderr.trim().split('\n')[0]!.slice(0, 100)}`);
  notes.push(`bqctl: ${runs.length} runs (${runs.filter((r) => r.code !== 0).length} non-zero), slowest ${Math.max(0, ...runs.map((r) => r.ms))} ms; commands listed: ${[...listed].filter((c) => c !== 'help').join(', ')}; e.g. ${sample.join('; ')} (all in logs/bqctl-runs.txt)`);
  return { failures, notes, count: runs.length };
}
