// The demo's A/B story, checked: the stand-in's simulated recipients follow tracked links at a rate
// per variant (through the real redirect listener), the broadcast tests its variants on a sample and
// sends the winner to the rest, and the report's numbers equal what the simulated recipients did.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startRedirectServer } from '../../src/engagement/redirect-server.js';
import { broadcastReport } from '../../src/engagement/report.js';
import { SimulatedRecipients } from '../../src/testing/index.js';
import type { JobEvent } from '../../src/queue/worker-pool.js';
import { withTelegram, insertJob, jobRow, range } from '../helpers/telegram.js';
import { waitForEvent, watchJobs } from '../helpers/wait.js';

const PUBLIC = 'https://t.example.com';
const offer = (name: string) => ({ text: `Offer ${name}`, entities: [{ type: 'text_link', offset: 0, length: 5, url: `https://shop.example.com/${name}` }] });

test('simulated recipients click B more often: B wins on the sample, the rest get B, and the report counts exactly their clicks', async () => {
  await withTelegram({ queue: { tracking: { publicUrl: PUBLIC, linkSecret: 'simulated-ab-link-secret-0123456789' } } }, async ({ db, api, queue }) => {
    const server = await startRedirectServer(queue.redirectHandler(), '127.0.0.1', 0);
    const people = new SimulatedRecipients(api, { publicUrl: PUBLIC, redirectBase: `http://127.0.0.1:${server.port}`, clickRate: (text) => (text === 'Offer B' ? 0.4 : 0.05), seed: 14 });
    try {
      const chats = range(7_000, 400);
      const jobs = watchJobs(queue);
      const jobId = await insertJob(db, 'broadcast', {
        variants: [{ name: 'A', weight: 1, message: offer('A') }, { name: 'B', weight: 1, message: offer('B') }],
        chat_ids: chats, track: true, ab_test: { sample_percent: 50, metric: 'ctr', decide_after: '1h' },
      });
      await jobs.done(jobId, (e) => e.outcome.kind === 'snooze', 30_000);
      await people.settled();
      await queue.flushUpdates();
      const broadcastId = (await jobRow(db, jobId)).payload.broadcast_id;
      // decide_after passes.
      await db.pool.query('UPDATE broadcasts SET ab_decide_at = now() WHERE broadcast_id = $1', [broadcastId]);
      await db.pool.query("UPDATE broadcast_deliveries SET next_attempt_at = now() WHERE broadcast_id = $1 AND status = 'pending'", [broadcastId]);
      const finished = waitForEvent<JobEvent>(queue, 'job:done', (e) => e.job.jobId === jobId && e.outcome.kind === 'completed', 60_000);
      await db.pool.query("UPDATE broadcast_queue_jobs SET run_at = now() WHERE job_id = $1 AND status = 'pending'", [jobId]);
      await finished;
      await people.settled();
      await queue.flushUpdates();

      assert.ok(people.clicks.every((c) => c.status === 302));
      const variantOf = new Map<number, string | null>((await db.pool.query('SELECT chat_id, variant FROM broadcast_deliveries WHERE broadcast_id = $1', [broadcastId])).rows.map((r) => [Number(r.chat_id), r.variant]));
      const clickersOf = (variant: string | null) => people.clicks.filter((c) => variantOf.get(c.chatId) === variant).length;
      const report = (await broadcastReport(db.pool, broadcastId))!;
      assert.equal(report.variants.map((v) => [v.name, v.delivered, v.unique_clickers, v.clicks]), [['A', 100, clickersOf('A'), clickersOf('A')], ['B', 100, clickersOf('B'), clickersOf('B')]]);
      assert.equal([report.rest!.variant, report.rest!.delivered, report.rest!.unique_clickers], ['B', 200, clickersOf(null)]);
      assert.equal([report.delivered, report.unique_clickers, report.clicks], [400, people.clicks.length, people.clicks.length]);
      assert.equal([report.ab_test!.decision!.winner, report.ab_test!.decision!.sent_variant], ['B', 'B']);
      // The rest got B's text, so their clicks came at B's rate: every click of the rest is on "Offer B".
      assert.ok(people.clicks.filter((c) => variantOf.get(c.chatId) === null).every((c) => c.text === 'Offer B'));
    } finally {
      people.stop();
      await server.close();
    }
  });
});

test.run();
