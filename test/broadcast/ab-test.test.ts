// Test, then send the winner (sql/0024, broadcast/ab-test.ts): the sample gets the variants, the rest
// waits for the decision and then gets the winner (clicks made through the real redirect listener),
// or the fallback when no variant won; one ledger, every chat once, one decision.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startRedirectServer } from '../../src/engagement/redirect-server.js';
import { decideAbTest, parseAbTest, parseDecideAfter } from '../../src/broadcast/ab-test.js';
import { broadcastReport } from '../../src/engagement/report.js';
import { claimDue } from '../../src/broadcast/ledger.js';
import { createTestDatabase } from '../helpers/db.js';
import { runBqctl } from '../cli/run-bqctl.js';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import { withTelegram, insertJob, jobRow, range, type TelegramWorld } from '../helpers/telegram.js';
import { waitForEvent, watchJobs, type JobWatch } from '../helpers/wait.js';

const PUBLIC = 'https://t.example.com';
const tracking = { publicUrl: PUBLIC, linkSecret: 'ab-test-link-secret-0123456789abcdef' };
const offer = (name: string) => ({ text: `Offer ${name}`, entities: [{ type: 'text_link', offset: 0, length: 5, url: `https://shop.example.com/${name}` }] });
const variants = [{ name: 'A', weight: 1, message: offer('A') }, { name: 'B', weight: 1, message: offer('B') }];
const CHATS = range(5_000, 100);

const snoozed = (jobs: JobWatch, jobId: number) => jobs.done(jobId, (e) => e.outcome.kind === 'snooze', 30_000);
const completed = (jobs: JobWatch, jobId: number) => jobs.done(jobId, (e) => e.outcome.kind === 'completed', 60_000);

async function ledger(world: TelegramWorld, broadcastId: number) {
  const { rows } = await world.db.pool.query('SELECT chat_id, variant, status FROM broadcast_deliveries WHERE broadcast_id = $1 ORDER BY chat_id', [broadcastId]);
  return rows as { chat_id: number; variant: string | null; status: string }[];
}

/** Each chat's deliveries, by the text it got. */
function received(world: TelegramWorld): Map<number, string[]> {
  const got = new Map<number, string[]>();
  for (const d of world.api.delivered) got.set(Number(d.chatId), [...(got.get(Number(d.chatId)) ?? []), d.text ?? '']);
  return got;
}

test('ab_test is checked with errors that say what is wrong', () => {
  const b = { variants, track: true };
  const good = { sample_percent: 10, metric: 'ctr', decide_after: '2h' };
  assert.equal(parseAbTest(good, b, 'p'), { samplePercent: 10, metric: 'ctr', decideAfterMs: 7_200_000, fallback: 'A' });
  assert.is(parseDecideAfter('1h30m'), 5_400_000);
  const refused = (value: unknown, pattern: RegExp, on: object = b) => assert.throws(() => parseAbTest(value, on, 'p.ab_test'), pattern);
  refused({ ...good, sample_percent: 0 }, /p\.ab_test\.sample_percent must be a whole number from 1 to 50/);
  refused({ ...good, sample_percent: 51 }, /sample_percent must be a whole number from 1 to 50/);
  refused({ ...good, metric: 'opens' }, /p\.ab_test\.metric must be one of ctr/);
  refused({ ...good, decide_after: 'soon' }, /decide_after must be a duration/);
  refused({ ...good, decide_after: '0s' }, /decide_after must be a duration/);
  refused({ ...good, fallback: 'C' }, /fallback must name one of the variants \(A, B\), got string "C"/);
  refused({ ...good, sample: 10 }, /unknown field "sample"/);
  refused(good, /needs two or more variants/, { variants: [variants[0]], track: true });
  refused(good, /needs track: true/, { variants });
  refused(good, /cannot be combined with deliver_at_local/, { ...b, deliver_at_local: '09:00' });
});

test('the claim leaves the held rest of an undecided A/B test, even when due by the clock, and takes it once decided', async () => {
  const db = await createTestDatabase();
  try {
    const { rows } = await db.pool.query(
      `INSERT INTO broadcasts (title, variants, audience, track, ab_test, status) VALUES ('t', $1, '{}', true, '{"sample_percent": 10, "decide_after": "1h"}', 'sending') RETURNING broadcast_id`,
      [JSON.stringify(variants)],
    );
    const id = rows[0].broadcast_id;
    await db.pool.query(`INSERT INTO broadcast_deliveries (broadcast_id, chat_id, status, variant) VALUES ($1, 1, 'pending', 'A'), ($1, 2, 'pending', NULL), ($1, 3, 'pending', NULL)`, [id]);
    assert.equal((await claimDue(db.pool, id, 10)).map((d) => d.chatId), [1]);
    await db.pool.query('UPDATE broadcasts SET ab_decided_at = now(), ab_sent_variant = $2 WHERE broadcast_id = $1', [id, 'A']);
    assert.equal((await claimDue(db.pool, id, 10)).map((d) => d.chatId).sort(), [2, 3]);
  } finally {
    await db.drop();
  }
});

test('a bad ab_test fails the inline broadcast with the reason, before anything is created', async () => {
  await withTelegram({ queue: { tracking } }, async ({ db, queue }) => {
    const done = waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobType === 'broadcast');
    const jobId = await insertJob(db, 'broadcast', { variants, chat_ids: CHATS, track: true, ab_test: { sample_percent: 60, decide_after: '1h' } });
    assert.is((await done).outcome.kind, 'failed');
    assert.match((await jobRow(db, jobId)).last_error, /payload\.ab_test\.sample_percent must be a whole number from 1 to 50 .*got 60/);
    assert.is((await db.pool.query('SELECT count(*)::int AS n FROM broadcasts')).rows[0].n, 0);
  });
});

test('a significant winner: the sample gets both variants, the rest waits, then gets the winner; every chat once; one decision', async () => {
  await withTelegram({ queue: { tracking } }, async (world) => {
    const { db, api, queue } = world;
    const jobs = watchJobs(queue);
    const jobId = await insertJob(db, 'broadcast', { variants, chat_ids: CHATS, track: true, ab_test: { sample_percent: 40, metric: 'ctr', decide_after: '1h', fallback: 'A' } });
    // The sample is sent, and the job sleeps until the decision instead of holding a worker.
    const slept = await snoozed(jobs, jobId);
    assert.is(slept.outcome.kind === 'snooze' && slept.outcome.reason, 'not_due');
    const broadcastId = (await jobRow(db, jobId)).payload.broadcast_id;
    const rows = await ledger(world, broadcastId);
    const sample = rows.filter((r) => r.variant !== null);
    assert.equal([sample.filter((r) => r.variant === 'A').length, sample.filter((r) => r.variant === 'B').length], [20, 20]);
    assert.ok(sample.every((r) => r.status === 'sent'));
    assert.ok(rows.filter((r) => r.variant === null).every((r) => r.status === 'pending'), 'the rest is held');
    assert.is(api.delivered.length, 40);
    const before = (await broadcastReport(db.pool, broadcastId))!;
    assert.equal([before.rest!.variant, before.rest!.waiting, before.rest!.delivered, before.ab_test!.decision], [null, 60, 0, null]);
    assert.equal([before.ab_test!.plan!.sample_percent, before.ab_test!.plan!.decide_after, before.ab_test!.plan!.fallback], [40, '1h', 'A']);

    // Simulated recipients, through the real redirect listener: 15 of B's 20 follow the link, 1 of A's.
    const server = await startRedirectServer(queue.redirectHandler(), '127.0.0.1', 0);
    const variantOf = new Map(sample.map((r) => [Number(r.chat_id), r.variant!]));
    const seen = { A: 0, B: 0 } as Record<string, number>;
    try {
      for (const d of api.delivered) {
        const v = variantOf.get(Number(d.chatId))!;
        if (seen[v]!++ >= (v === 'B' ? 15 : 1)) continue;
        const url = (d.body as { entities: { url: string }[] }).entities[0]!.url;
        assert.is((await fetch(`http://127.0.0.1:${server.port}${url.slice(PUBLIC.length)}`, { redirect: 'manual' })).status, 302);
      }
    } finally {
      await server.close();
    }
    await queue.flushUpdates();
    // decide_after passes: the moment, the rest's rows and the sleeping job all move to now.
    await db.pool.query('UPDATE broadcasts SET ab_decide_at = now() WHERE broadcast_id = $1', [broadcastId]);
    await db.pool.query("UPDATE broadcast_deliveries SET next_attempt_at = now() WHERE broadcast_id = $1 AND status = 'pending'", [broadcastId]);
    const finished = completed(jobs, jobId);
    await db.pool.query("UPDATE broadcast_queue_jobs SET run_at = now() WHERE job_id = $1 AND status = 'pending'", [jobId]);
    await finished;

    const b = (await db.pool.query('SELECT status, total, sent, ab_winner, ab_sent_variant, ab_p_value, ab_decided_at, driver_job_id, driver_claimed_at::text AS claimed FROM broadcasts WHERE broadcast_id = $1', [broadcastId])).rows[0];
    assert.equal([b.status, b.total, b.sent, b.ab_winner, b.ab_sent_variant], ['completed', 100, 100, 'B', 'B']);
    assert.ok(b.ab_p_value < 0.001, `p = ${b.ab_p_value}`);
    const got = received(world);
    assert.equal(CHATS.filter((c) => got.get(c)?.length !== 1), [], 'every chat exactly once');
    const rest = CHATS.filter((c) => !variantOf.has(c));
    assert.is(rest.length, 60);
    assert.equal(rest.filter((c) => got.get(c)![0] !== 'Offer B'), [], 'the rest got the winner');
    assert.ok((await ledger(world, broadcastId)).filter((r) => r.variant === null).every((r) => r.status === 'sent'));

    // The report: the sample's variants with what the simulated recipients did, the decision, and the rest.
    const report = (await broadcastReport(db.pool, broadcastId))!;
    assert.equal(report.variants.map((v) => [v.name, v.delivered, v.unique_clickers, v.clicks]), [['A', 20, 1, 1], ['B', 20, 15, 15]]);
    assert.equal([report.rest!.variant, report.rest!.delivered, report.rest!.waiting, report.rest!.unique_clickers], ['B', 60, 0, 0]);
    assert.equal([report.delivered, report.unique_clickers, report.winner], [100, 16, 'B']);
    const decision = report.ab_test!.decision!;
    assert.equal([decision.winner, decision.sent_variant, decision.p_value, decision.decided_at.getTime()], ['B', 'B', b.ab_p_value, b.ab_decided_at.getTime()]);
    const shown = await runBqctl(['broadcast', 'report', String(broadcastId)], { DATABASE_URL: db.url });
    assert.match(shown.stdout, /rest \(B\)\s+60\b/);
    assert.match(shown.stdout, /Test, then send the winner: sample 40 %, decided .* winner B; the rest got B/);

    // Decided once: two runs racing for the decision (the lock and the IS NULL) write it once.
    await db.pool.query('UPDATE broadcasts SET ab_decided_at = NULL WHERE broadcast_id = $1', [broadcastId]);
    const driver = { broadcastId, jobId: Number(b.driver_job_id), claimedAt: b.claimed };
    const ab = parseAbTest({ sample_percent: 40, decide_after: '1h' }, { variants, track: true }, 'p')!;
    const both = await Promise.all([decideAbTest(db.pool, driver, ab), decideAbTest(db.pool, driver, ab)]);
    assert.equal(both.map((r) => r!.now).sort(), [false, true]);
    assert.is(both[0]!.decision.decidedAt.getTime(), both[1]!.decision.decidedAt.getTime());
  });
});

test('nothing significant: the rest gets the fallback after decide_after, with two daemons, each chat once', async () => {
  await withTelegram({ queue: { tracking } }, async (world) => {
    const { db, queue, addDaemon } = world;
    const other = await addDaemon();
    const jobId = await insertJob(db, 'broadcast', { variants, chat_ids: CHATS, track: true, ab_test: { sample_percent: 20, metric: 'ctr', decide_after: '2s', fallback: 'B' } });
    await new Promise<void>((resolve) => {
      const onDone = (e: JobEvent) => e.job.jobId === jobId && e.outcome.kind === 'completed' && resolve();
      queue.on('job:done', onDone);
      other.on('job:done', onDone);
    });
    const broadcastId = (await jobRow(db, jobId)).result.broadcast_id;
    const b = (await db.pool.query('SELECT status, sent, ab_winner, ab_sent_variant, ab_p_value, ab_decided_at, ab_decide_at FROM broadcasts WHERE broadcast_id = $1', [broadcastId])).rows[0];
    assert.equal([b.status, b.sent, b.ab_winner, b.ab_sent_variant, b.ab_p_value], ['completed', 100, null, 'B', 1]);
    assert.ok(b.ab_decided_at.getTime() >= b.ab_decide_at.getTime(), 'decided before its moment');
    const rows = await ledger(world, broadcastId);
    const sample = new Set(rows.filter((r) => r.variant !== null).map((r) => Number(r.chat_id)));
    assert.is(sample.size, 20);
    const got = received(world);
    assert.equal(CHATS.filter((c) => got.get(c)?.length !== 1), [], 'every chat exactly once');
    assert.equal(CHATS.filter((c) => !sample.has(c) && got.get(c)![0] !== 'Offer B'), [], 'the rest got the fallback');
    const report = (await broadcastReport(db.pool, broadcastId))!;
    assert.equal([report.rest!.variant, report.rest!.delivered, report.ab_test!.decision!.winner, report.ab_test!.decision!.sent_variant], ['B', 80, null, 'B']);
    // None of the rest was sent before the decision.
    const early = await db.pool.query('SELECT count(*)::int AS n FROM broadcast_deliveries WHERE broadcast_id = $1 AND variant IS NULL AND sent_at < $2', [broadcastId, b.ab_decided_at]);
    assert.is(early.rows[0].n, 0);
  });
});

test.run();
