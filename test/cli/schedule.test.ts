// bqctl schedule add|list|pause|resume|run-now|remove against a real database (issue 16).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createTestDatabase } from '../helpers/db.js';
import { runBqctl, json } from './run-bqctl.js';

test('bqctl schedule manages schedules; a bad cron or zone is a usage error that says which', async () => {
  const db = await createTestDatabase();
  const env = { DATABASE_URL: db.url };
  try {
    const added = json(await runBqctl(['schedule', 'add', 'weekly-digest', '--cron', '0 9 * * 1', '--tz', 'Europe/Berlin', '--payload', '{"message": {"text": "digest"}}', '--json'], env));
    assert.equal([added.name, added.cron, added.time_zone, added.job_type, added.enabled], ['weekly-digest', '0 9 * * 1', 'Europe/Berlin', 'broadcast', true]);
    // Monday 09:00 in Berlin is 08:00 UTC in winter, 07:00 in summer.
    assert.match(added.next_run_at, /T0[78]:00:00\.000Z$/);
    const badZone = await runBqctl(['schedule', 'add', 'x', '--cron', '0 9 * * 1', '--tz', 'Mars/Olympus'], env);
    assert.is(badZone.code, 2);
    assert.match(badZone.stderr, /time zone "Mars\/Olympus" is not an IANA time zone/);
    const badCron = await runBqctl(['schedule', 'add', 'x', '--cron', '0 25 * * *'], env);
    assert.match(badCron.stderr, /cron "0 25 \* \* \*" is not valid/);
    const twice = await runBqctl(['schedule', 'add', 'weekly-digest', '--cron', '0 9 * * 1'], env);
    assert.match(twice.stderr, /schedule "weekly-digest" exists already/);
    assert.is(json(await runBqctl(['schedule', 'pause', 'weekly-digest', '--json'], env)).enabled, false);
    const listed = json(await runBqctl(['schedule', 'list', '--json'], env));
    assert.equal(listed.schedules.map((s: any) => [s.name, s.enabled]), [['weekly-digest', false]]);
    assert.is(json(await runBqctl(['schedule', 'resume', 'weekly-digest', '--json'], env)).enabled, true);
    const ran = json(await runBqctl(['schedule', 'run-now', 'weekly-digest', '--json'], env));
    const { rows } = await db.pool.query('SELECT job_type, payload FROM broadcast_queue_jobs WHERE job_id = $1', [ran.job_id]);
    assert.equal(rows[0], { job_type: 'broadcast', payload: { message: { text: 'digest' } } });
    assert.is((await runBqctl(['schedule', 'remove', 'weekly-digest'], env)).code, 0);
    const gone = await runBqctl(['schedule', 'remove', 'weekly-digest'], env);
    assert.is(gone.code, 1);
    assert.match(gone.stderr, /no schedule named "weekly-digest"/);
  } finally {
    await db.drop();
  }
});

test.run();
