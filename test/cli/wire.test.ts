// One record, one set of names: a job or a broadcast printed by `bqctl --json` carries exactly the
// keys (and values) the admin API answers for it, the SQL column names, and the fields the original
// system documented keep their names (`/status`'s activeJobs, `/statistics`'s total_jobs,
// `/broadcasts/failed` as an array), so its operators' jq lines keep working.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startAdminServer } from '../../src/http/admin-server.js';
import { webhookBody } from '../../src/broadcast/webhook.js';
import type { Job } from '../../src/queue/claimer.js';
import { withTelegram } from '../helpers/telegram.js';
import { json, runBqctl } from './run-bqctl.js';

const TOKEN = 'wire-test-token-0123456789abcdef';
const SNAKE = /^[a-z][a-z0-9]*(_[a-z0-9]+)*$/;
const CONTENT = ['message', 'variants', 'audience'];

const without = (record: Record<string, unknown>, keys: string[]) => Object.fromEntries(Object.entries(record).filter(([k]) => !keys.includes(k)));

function assertSnake(keys: string[], what: string): void {
  for (const key of keys) assert.match(key, SNAKE, `${what}: ${key} is not a column-style name`);
}

test('bqctl --json and the admin API print a job and a broadcast under the same snake_case keys, with the same values', async () => {
  // Jobs only in final states, and of types no handler runs: the daemon leaves them as inserted.
  await withTelegram({}, async ({ db, queue }) => {
    const env = { DATABASE_URL: db.url };
    const failed = (await db.pool.query(
      `INSERT INTO broadcast_queue_jobs (job_type, payload, status, attempts, last_error, finished_at, errors)
       VALUES ('send', '{"chat_id": 7, "message": {"text": "hi"}}', 'failed', 3, 'Forbidden: bot was blocked by the user', now(),
               '[{"at": "2026-01-01T00:00:00Z", "attempt": 3, "error": "Forbidden: bot was blocked by the user"}]')
       RETURNING job_id`,
    )).rows[0].job_id as number;
    const broadcastId = (await db.pool.query(
      `INSERT INTO broadcasts (title, message, audience, status, total, sent, blocked, started_at, finished_at)
       VALUES ('wire', '{"text": "x"}', '{"chat_ids": [1, 2, 3]}', 'completed', 3, 2, 1, now() - interval '1 minute', now())
       RETURNING broadcast_id`,
    )).rows[0].broadcast_id as number;
    const live = (await db.pool.query(
      `INSERT INTO broadcasts (title, message, status, total, sent, started_at) VALUES ('live', '{"text": "y"}', 'sending', 10, 4, now()) RETURNING broadcast_id`,
    )).rows[0].broadcast_id as number;

    const admin = await startAdminServer(queue, { host: '127.0.0.1', port: 0, apiToken: TOKEN });
    const get = async (path: string) => {
      const res = await fetch(`${admin.url}/api/admin/queue${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
      assert.is(res.status, 200, path);
      return res.json() as Promise<any>;
    };
    try {
      // A job: bqctl show, bqctl list and /broadcasts/failed carry exactly the record /jobs/:id answers.
      const httpJob = await get(`/jobs/${failed}`);
      assertSnake(Object.keys(httpJob), 'GET /jobs/:id');
      const shown = json(await runBqctl(['show', String(failed), '--json'], env));
      assert.equal(Object.keys(shown), Object.keys(httpJob));
      assert.equal(shown, httpJob);
      const listed = json(await runBqctl(['list', '--json'], env)).jobs.find((j: any) => j.job_id === failed);
      assert.equal(Object.keys(listed), Object.keys(httpJob));
      const failedList = await get('/broadcasts/failed');
      assert.ok(Array.isArray(failedList), '/broadcasts/failed is an array, as the original system answered');
      assert.equal(Object.keys(failedList[0]), Object.keys(httpJob));
      assert.equal(failedList[0], httpJob);

      // A broadcast: bqctl broadcast show is /broadcasts/:id plus its outcomes; list, watch, status
      // and the webhook body carry the same names (the last three without the content).
      const httpBroadcast = await get(`/broadcasts/${broadcastId}`);
      assertSnake(Object.keys(httpBroadcast), 'GET /broadcasts/:id');
      const cliBroadcast = json(await runBqctl(['broadcast', 'show', String(broadcastId), '--json'], env));
      assert.equal(Object.keys(cliBroadcast), [...Object.keys(httpBroadcast), 'outcomes']);
      assert.equal(without(cliBroadcast, ['outcomes']), httpBroadcast);
      assert.equal(cliBroadcast.audience, { chat_ids_count: 3 });
      const listedBroadcast = json(await runBqctl(['broadcast', 'list', '--json'], env)).broadcasts.find((b: any) => b.broadcast_id === broadcastId);
      assertSnake(Object.keys(listedBroadcast), 'bqctl broadcast list --json');
      for (const key of Object.keys(listedBroadcast)) assert.ok(key in httpBroadcast, `bqctl broadcast list --json has ${key}, which the API's broadcast has not`);
      const record = Object.keys(httpBroadcast).filter((k) => !CONTENT.includes(k));
      const watched = json(await runBqctl(['watch', String(broadcastId), '--json'], env));
      assert.equal(Object.keys(watched), record);
      assert.equal(watched, without(httpBroadcast, CONTENT));

      const httpStatus = await get('/status');
      const cliStatus = json(await runBqctl(['status', '--json'], env));
      assert.equal(httpStatus.broadcastsInProgress.map((b: any) => b.broadcast_id), [live]);
      assert.equal(Object.keys(httpStatus.broadcastsInProgress[0]), record);
      assert.equal(Object.keys(cliStatus.broadcastsInProgress[0]), record);

      await db.pool.query('UPDATE broadcasts SET webhook_job_id = $2 WHERE broadcast_id = $1', [broadcastId, failed]);
      const hook = JSON.parse(await webhookBody(db.pool, { jobId: failed, payload: { broadcast_id: broadcastId } } as unknown as Job));
      for (const key of Object.keys(hook.broadcast)) assert.equal(hook.broadcast[key], httpBroadcast[key], `the webhook's broadcast.${key} differs from the API's`);
      assert.ok(['broadcast_id', 'status', 'total', 'sent', 'blocked', 'failure_reason', 'started_at', 'finished_at'].every((k) => k in hook.broadcast));

      // The fields the original deployment doc's jq lines read.
      assert.type(httpStatus.activeJobs, 'number');
      assert.equal([httpStatus.pending, httpStatus.failed], [0, 1]);
      const statistics = await get('/statistics');
      assert.is(statistics.total_jobs, 1);
    } finally {
      await admin.close();
    }
  });
});

test('bqctl --json reports use the same names: retry, cancel, enqueue, broadcast create and resend', async () => {
  await withTelegram({}, async ({ db }) => {
    const env = { DATABASE_URL: db.url };
    // 'nobody' jobs: no handler claims them, so they stay as bqctl leaves them.
    const done = (await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, status, finished_at) VALUES ('nobody', 'failed', now()) RETURNING job_id`)).rows[0].job_id;
    const retried = json(await runBqctl(['retry', String(done), '--json'], env));
    const cancelled = json(await runBqctl(['cancel', String(done), '999999', '--json'], env));
    const dry = json(await runBqctl(['retry', '--failed', '--dry-run', '--json'], env));
    const enqueued = json(await runBqctl(['enqueue', 'send', '--chat', '5', '--text', 'hi', '--run-at', '10m', '--json'], env));
    const created = json(await runBqctl(['broadcast', 'create', '--title', 't', '--text', 'x', '--chats', '1', '--json'], env));
    const resent = json(await runBqctl(['broadcast', 'resend', String(created.broadcast_id), '--unknown', '--json'], env));
    const reports: [string, Record<string, unknown>][] = [
      ['retry', retried.results[0]], ['cancel', cancelled.results[0]], ['cancel (not found)', cancelled.results[1]], ['retry --dry-run', dry],
      ['enqueue send', enqueued], ['broadcast create', created], ['broadcast resend', resent],
    ];
    for (const [what, report] of reports) assertSnake(Object.keys(report), `bqctl ${what} --json`);
    assert.equal(retried.results, [{ job_id: done, outcome: 'retried', status: 'pending' }]);
    assert.equal(cancelled.results[1], { job_id: 999999, outcome: 'not_found' });
    assert.equal(Object.keys(created), ['broadcast_id', 'status', 'job_id']);
  });
});

test.run();
