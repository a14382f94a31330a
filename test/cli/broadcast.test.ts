import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { bqctlInProcess, json, runBqctl } from './run-bqctl.js';

async function withDb(body: (db: TestDatabase, env: Record<string, string>, dir: string) => Promise<void>): Promise<void> {
  const db = await createTestDatabase();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bqctl-broadcast-'));
  try {
    await body(db, { DATABASE_URL: db.url }, dir);
  } finally {
    await db.drop();
    await rm(dir, { recursive: true, force: true });
  }
}

const broadcastRow = async (db: TestDatabase, id: number) => (await db.pool.query('SELECT * FROM broadcasts WHERE broadcast_id = $1', [id])).rows[0];

test('broadcast create stores a draft, or with --send a queued broadcast and its keyed job', async () => {
  await withDb(async (db, env, dir) => {
    const draft = await runBqctl(['broadcast', 'create', '--title', 'Nov promo', '--text', 'Hello <b>VIPs</b>', '--parse-mode', 'HTML', '--segment', '{"tags_any":["vip"]}', '--frequency-cap', '2'], env);
    assert.is(draft.code, 0, draft.stderr);
    const id = Number(draft.stdout.trim());
    const row = await broadcastRow(db, id);
    assert.equal([row.title, row.status, row.message, row.audience, row.frequency_cap, row.allow_paid_broadcast], ['Nov promo', 'draft', { text: 'Hello <b>VIPs</b>', parse_mode: 'HTML' }, { tags_any: ['vip'] }, 2, false]);
    assert.is((await db.pool.query('SELECT count(*)::int AS n FROM broadcast_queue_jobs')).rows[0].n, 0);

    const variants = path.join(dir, 'variants.json');
    await writeFile(variants, JSON.stringify([{ name: 'a', weight: 1, message: { text: 'A' } }, { name: 'b', weight: 2, message: { text: 'B' } }]));
    const sent = json(await runBqctl(['broadcast', 'create', '--title', 'A/B', '--variants-file', variants, '--chats', '1,2', '--allow-paid', '--send', '--priority', '3', '--json'], env));
    assert.is(sent.status, 'queued');
    const job = (await db.pool.query('SELECT job_type, payload, job_key, priority FROM broadcast_queue_jobs WHERE job_id = $1', [sent.job_id])).rows[0];
    assert.equal(job, { job_type: 'broadcast', payload: { broadcast_id: sent.broadcast_id }, job_key: `broadcast:${sent.broadcast_id}`, priority: 3 });
    const ab = await broadcastRow(db, sent.broadcast_id);
    assert.equal([ab.variants.length, ab.audience, ab.allow_paid_broadcast, ab.message], [2, { chat_ids: [1, 2] }, true, null]);

    const badVariants = path.join(dir, 'bad-variants.json');
    await writeFile(badVariants, JSON.stringify([{ name: 'a', weight: 0, message: { text: 'A' } }]));
    const rejected = await bqctlInProcess(['broadcast', 'create', '--title', 'x', '--variants-file', badVariants], env);
    assert.is(rejected.code, 2);
    assert.match(rejected.stderr, /bad-variants\.json\.variants\[0\]\.weight must be a whole number/);
    assert.is((await bqctlInProcess(['broadcast', 'create', '--text', 'x'], env)).code, 2, '--title is required');

    assert.is((await bqctlInProcess(['broadcast', 'create', '--title', 'x', '--text', 'x', '--frequency-cap', '0'], env)).code, 2);

    const list = json(await runBqctl(['broadcast', 'list', '--json'], env));
    assert.equal(list.broadcasts.map((b: any) => b.broadcast_id), [sent.broadcast_id, id]);
    assert.equal(json(await runBqctl(['broadcast', 'list', '--status', 'draft', '--json'], env)).broadcasts.map((b: any) => b.broadcast_id), [id]);
    assert.is((await bqctlInProcess(['broadcast', 'list', '--status', 'done'], env)).code, 2);
    const shown = json(await runBqctl(['broadcast', 'show', String(id), '--json'], env));
    assert.equal([shown.broadcast_id, shown.status, shown.outcomes], [id, 'draft', []]);
    assert.match((await runBqctl(['broadcast', 'show', String(id)], env)).stdout, /Nov promo — draft/);

    const local = json(await runBqctl(['broadcast', 'create', '--title', 'Morning', '--text', 'Good morning', '--deliver-at-local', '09:00', '--default-time-zone', 'Asia/Tokyo', '--json'], env));
    const morning = await broadcastRow(db, local.broadcast_id);
    assert.equal([morning.deliver_at_local, morning.default_time_zone], ['09:00', 'Asia/Tokyo']);
    const badTime = await bqctlInProcess(['broadcast', 'create', '--title', 'x', '--text', 'x', '--deliver-at-local', '9am'], env);
    assert.is(badTime.code, 2);
    assert.match(badTime.stderr, /--deliver-at-local must be a local time "HH:MM"/);
    assert.match((await runBqctl(['broadcast', 'show', String(local.broadcast_id)], env)).stdout, /delivers at 09:00 in each recipient's time zone \(default Asia\/Tokyo\)/);
  });
});

test('broadcast create --track --ab-test stores a test-then-send-the-winner broadcast, checked as the daemon checks it; --help explains it', async () => {
  await withDb(async (db, env, dir) => {
    const variants = path.join(dir, 'variants.json');
    await writeFile(variants, JSON.stringify([{ name: 'A', weight: 1, message: { text: 'A' } }, { name: 'B', weight: 1, message: { text: 'B' } }]));
    const ab = '{"sample_percent": 10, "metric": "reply_rate", "decide_after": "2h", "fallback": "B"}';
    const sent = json(await runBqctl(['broadcast', 'create', '--title', 'Spring', '--variants-file', variants, '--track', '--ab-test', ab, '--send', '--json'], env));
    const row = await broadcastRow(db, sent.broadcast_id);
    assert.equal([row.status, row.track, row.ab_test], ['queued', true, JSON.parse(ab)]);
    assert.is((await broadcastRow(db, json(await runBqctl(['broadcast', 'create', '--title', 't', '--text', 'x', '--track', '--json'], env)).broadcast_id)).track, true);

    const refused = async (args: string[], pattern: RegExp) => {
      const r = await bqctlInProcess(['broadcast', 'create', '--title', 'x', ...args], env);
      assert.is(r.code, 2, r.stderr);
      assert.match(r.stderr, pattern);
    };
    await refused(['--variants-file', variants, '--track', '--ab-test', '{"sample_percent": 60, "decide_after": "2h"}'], /--ab-test\.sample_percent must be a whole number from 1 to 50 .*got 60/);
    await refused(['--variants-file', variants, '--track', '--ab-test', '{"sample_percent": 10, "metric": "opens", "decide_after": "2h"}'], /--ab-test\.metric must be one of ctr, reply_rate, opt_out_rate, block_rate/);
    await refused(['--variants-file', variants, '--track', '--ab-test', '{"sample_percent": 10, "decide_after": "soon"}'], /--ab-test\.decide_after must be a duration/);
    await refused(['--variants-file', variants, '--track', '--ab-test', '{"sample_percent": 10, "decide_after": "2h", "fallback": "C"}'], /--ab-test\.fallback must name one of the variants \(A, B\)/);
    await refused(['--variants-file', variants, '--track', '--ab-test', '{sample_percent: 10}'], /--ab-test is not valid JSON/);
    await refused(['--variants-file', variants, '--ab-test', '{"sample_percent": 10, "decide_after": "2h"}'], /--ab-test needs --track/);
    await refused(['--text', 'x', '--track', '--ab-test', '{"sample_percent": 10, "decide_after": "2h"}'], /--ab-test needs --variants-file with two or more variants/);
    await refused(['--variants-file', variants, '--track', '--deliver-at-local', '09:00', '--ab-test', '{"sample_percent": 10, "decide_after": "2h"}'], /cannot be combined with deliver_at_local/);
    assert.is((await db.pool.query('SELECT count(*)::int AS n FROM broadcasts')).rows[0].n, 2, 'nothing refused was stored');

    const help = (await runBqctl(['broadcast', 'create', '--help'], env)).stdout;
    assert.match(help, /--track/);
    assert.match(help, /--ab-test <json>/);
    assert.match(help.replace(/\s+/g, ' '), /"metric": "ctr" \| "reply_rate" \| "opt_out_rate" \| "block_rate"/);
  });
});

test('broadcast pause, resume and cancel move the status and refuse what does not apply', async () => {
  await withDb(async (db, env) => {
    const { rows } = await db.pool.query(`INSERT INTO broadcasts (title, message, status, total) VALUES ('b', '{"text":"x"}', 'sending', 3) RETURNING broadcast_id`);
    const id = rows[0].broadcast_id;
    await db.pool.query(`INSERT INTO broadcast_deliveries (broadcast_id, chat_id, status) VALUES ($1, 1, 'sent'), ($1, 2, 'pending'), ($1, 3, 'pending')`, [id]);
    await db.pool.query(`UPDATE broadcasts SET sent = 1 WHERE broadcast_id = $1`, [id]);

    const paused = await runBqctl(['broadcast', 'pause', String(id)], env);
    assert.is(paused.code, 0, paused.stderr);
    assert.match(paused.stdout, /is paused/);
    assert.is((await broadcastRow(db, id)).status, 'paused');
    const twice = await runBqctl(['broadcast', 'pause', String(id)], env);
    assert.is(twice.code, 1);
    assert.match(twice.stderr, /is paused; pause applies only/);
    const resumed = json(await runBqctl(['broadcast', 'resume', String(id), '--json'], env));
    assert.equal([resumed.outcome, resumed.broadcast.status], ['updated', 'sending']);
    const cancelled = await runBqctl(['broadcast', 'cancel', String(id), '--json'], env);
    assert.is(cancelled.code, 0, cancelled.stderr);
    const after = await broadcastRow(db, id);
    assert.equal([after.status, after.sent, after.skipped], ['cancelled', 1, 2]);
    assert.is((await runBqctl(['broadcast', 'resume', String(id)], env)).code, 1);
    const missing = await runBqctl(['broadcast', 'cancel', '999999'], env);
    assert.is(missing.code, 1);
    assert.match(missing.stderr, /broadcast 999999 does not exist/);
    assert.is((await bqctlInProcess(['broadcast', 'pause', '0'], env)).code, 2);
  });
});

test('broadcast resend puts unknown or failed-by-reason recipients back to pending, fixes the counters and queues one job', async () => {
  await withDb(async (db, env) => {
    const { rows } = await db.pool.query(
      `INSERT INTO broadcasts (title, message, status, total, sent, failed, blocked, unknown, started_at, finished_at)
       VALUES ('r', '{"text":"x"}', 'completed', 7, 2, 2, 1, 2, now(), now()) RETURNING broadcast_id`,
    );
    const id = rows[0].broadcast_id;
    await db.pool.query(
      `INSERT INTO broadcast_deliveries (broadcast_id, chat_id, status, outcome, error_reason, attempts) VALUES
         ($1, 1, 'sent', NULL, NULL, 1), ($1, 2, 'sent', 'migrated', NULL, 1),
         ($1, 3, 'failed', 'retries_exhausted', 'network', 5), ($1, 4, 'failed', 'content:parse_entities', 'content', 1),
         ($1, 5, 'failed', 'blocked', 'blocked', 1), ($1, 6, 'unknown', 'crashed', NULL, 1), ($1, 7, 'unknown', 'crashed', NULL, 1)`,
      [id],
    );
    const shown = json(await runBqctl(['broadcast', 'show', String(id), '--json'], env));
    assert.ok(shown.outcomes.some((o: any) => o.outcome === 'retries_exhausted' && o.error_reason === 'network' && o.count === 1));

    assert.is((await bqctlInProcess(['broadcast', 'resend', String(id)], env)).code, 2, 'needs --unknown or --failed-class');
    const nothing = json(await runBqctl(['broadcast', 'resend', String(id), '--failed-class', 'chat_not_found', '--json'], env));
    assert.equal([nothing.resent, nothing.job_id], [0, null]);
    assert.is((await broadcastRow(db, id)).status, 'completed', 'nothing matched, nothing changed');

    const result = await runBqctl(['broadcast', 'resend', String(id), '--unknown', '--json'], env);
    assert.is(result.code, 0, result.stderr);
    const first = json(result);
    assert.equal([first.resent, first.from_unknown, first.status, first.existing_job], [2, 2, 'sending', false]);
    const ledger = (await db.pool.query(`SELECT chat_id, status, attempts, next_attempt_at <= now() AS due FROM broadcast_deliveries WHERE broadcast_id = $1 AND chat_id IN (6, 7) ORDER BY chat_id`, [id])).rows;
    assert.equal(ledger, [{ chat_id: 6, status: 'pending', attempts: 0, due: true }, { chat_id: 7, status: 'pending', attempts: 0, due: true }]);
    let b = await broadcastRow(db, id);
    assert.equal([b.status, b.unknown, b.failed, b.blocked, b.finished_at, b.job_id], ['sending', 0, 2, 1, null, first.job_id]);
    const job = (await db.pool.query('SELECT job_type, payload, job_key, status FROM broadcast_queue_jobs WHERE job_id = $1', [first.job_id])).rows[0];
    assert.equal(job, { job_type: 'broadcast', payload: { broadcast_id: id }, job_key: `broadcast:${id}`, status: 'pending' });

    // A second resend while that job is unfinished reuses it: one job drives a broadcast.
    const second = json(await runBqctl(['broadcast', 'resend', String(id), '--failed-class', 'content', 'retries_exhausted', 'blocked', '--json'], env));
    assert.equal([second.resent, second.from_failed, second.from_blocked, second.job_id, second.existing_job], [3, 2, 1, first.job_id, true]);
    b = await broadcastRow(db, id);
    assert.equal([b.unknown, b.failed, b.blocked, b.sent], [0, 0, 0, 2]);
    assert.is((await db.pool.query(`SELECT count(*)::int AS n FROM broadcast_deliveries WHERE broadcast_id = $1 AND status = 'pending'`, [id])).rows[0].n, 5);
    assert.is((await db.pool.query('SELECT count(*)::int AS n FROM broadcast_queue_jobs')).rows[0].n, 1);
    const human = await runBqctl(['broadcast', 'resend', String(id), '--failed-class', 'all'], env);
    assert.match(human.stdout, /no recipients matched/);
  });
});

test.run();
