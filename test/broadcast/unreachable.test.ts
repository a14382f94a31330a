// Recipients Telegram refuses for good are marked unreachable; that bookkeeping must not cost the outcome.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { insertJob, withTelegram } from '../helpers/telegram.js';
import { watchJobs } from '../helpers/wait.js';

test('a failed subscriber update after a 403 neither escapes as an unhandled rejection nor loses the outcome', async () => {
  const escaped: unknown[] = [];
  const onUnhandled = (reason: unknown) => escaped.push(reason);
  process.on('unhandledRejection', onUnhandled);
  try {
    await withTelegram({}, async ({ db, api, queue }) => {
      await db.pool.query(`CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'subscribers are read-only here'; END $$;
                           CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON broadcast_subscribers FOR EACH ROW EXECUTE FUNCTION refuse()`);
      for (const chat of [1, 2, 3]) api.setChatState(chat, 'blocked');
      const jobs = watchJobs(queue);
      const jobId = await insertJob(db, 'broadcast', { message: { text: 'hi' }, chat_ids: [1, 2, 3, 4] });
      const done = await jobs.done(jobId);
      assert.is(done.outcome.kind, 'completed', JSON.stringify(done.outcome));
      const { rows } = await db.pool.query(`SELECT status, count(*)::int AS n FROM broadcast_deliveries GROUP BY status ORDER BY status`);
      assert.equal(rows, [{ status: 'failed', n: 3 }, { status: 'sent', n: 1 }]);
    });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(escaped.map(String), []);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});

test.run();
