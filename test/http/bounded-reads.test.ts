// Every read path bounds what it loads: a payload of a million chat ids is stored (it is a
// realistic broadcast), but no list, job view or bqctl command reads it whole, and a payload past
// the bound is refused at insert with the constraint's name.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startAdminServer } from '../../src/http/admin-server.js';
import { withTelegram } from '../helpers/telegram.js';
import { runBqctl, json } from '../cli/run-bqctl.js';

const TOKEN = 'bounded-reads-token-0123456789abcdef';
const MILLION_IDS = `(SELECT jsonb_agg(-1001000000000 - g) FROM generate_series(1, 1000000) g)`;

async function get(url: string, method = 'GET'): Promise<{ status: number; bytes: number; body: any }> {
  const res = await fetch(url, { method, headers: { authorization: `Bearer ${TOKEN}` } });
  const text = await res.text();
  return { status: res.status, bytes: Buffer.byteLength(text), body: JSON.parse(text) };
}

test('a million inline chat ids is accepted; past 32 MiB the insert is refused with a clear error', async () => {
  await withTelegram({}, async ({ db }) => {
    const ok = await db.pool.query(
      `INSERT INTO broadcast_queue_jobs (job_type, payload, status, finished_at)
       VALUES ('nobody-handles-this', jsonb_build_object('message', '{"text": "hi"}'::jsonb, 'chat_ids', ${MILLION_IDS}), 'cancelled', now())
       RETURNING pg_column_size(payload) AS bytes`,
    );
    assert.ok(ok.rows[0].bytes > 15_000_000, `1M supergroup ids stored (${ok.rows[0].bytes} bytes)`);
    let error: Error | null = null;
    try {
      await db.pool.query(
        `INSERT INTO broadcast_queue_jobs (job_type, payload)
         VALUES ('nobody-handles-this', jsonb_build_object('chat_ids', (SELECT jsonb_agg(-1001000000000 - g) FROM generate_series(1, 2000000) g)))`,
      );
    } catch (e) {
      error = e as Error;
    }
    assert.match(error?.message ?? 'no error', /violates check constraint "broadcast_queue_jobs_payload_at_most_32_mib_use_subscribers"/);
    const big = await db.pool.query(`INSERT INTO broadcasts (message, audience) VALUES (jsonb_build_object('text', repeat('x', 2000000)), '{}')`).then(() => null, (e: Error) => e);
    assert.match(big?.message ?? 'no error', /broadcasts_message_and_variants_at_most_1_mib/);
  });
});

test('lists, job views, retry answers, broadcast views and bqctl read huge payloads summarised', async () => {
  await withTelegram({}, async ({ db, queue }) => {
    // Four failed broadcast jobs of a million ids each, as in the issue (there: 8 × 2M, 160 MB per request).
    const failed = await db.pool.query(
      `WITH ids AS (SELECT ${MILLION_IDS} AS ids)
       INSERT INTO broadcast_queue_jobs (job_type, payload, status, attempts, finished_at, last_error)
       SELECT 'broadcast', jsonb_build_object('message', '{"text": "hi"}'::jsonb, 'chat_ids', ids, 'note', repeat('n', 200000)), 'failed', 1, now(), 'content: too long'
         FROM ids, generate_series(1, 4)
       RETURNING job_id`,
    );
    const jobId = failed.rows[0].job_id;
    const idle = await db.pool.query(
      `INSERT INTO broadcast_queue_jobs (job_type, payload, status, finished_at)
       VALUES ('nobody-handles-this', jsonb_build_object('chat_ids', ${MILLION_IDS}), 'cancelled', now()) RETURNING job_id`,
    );
    const broadcast = await db.pool.query(
      `INSERT INTO broadcasts (title, message, audience)
       VALUES ('big', jsonb_build_object('text', 'hi', 'reply_markup', jsonb_build_object('inline_keyboard', (SELECT jsonb_agg(jsonb_build_array(jsonb_build_object('text', 'b' || g, 'url', 'https://example.com/' || g))) FROM generate_series(1, 5000) g))),
               jsonb_build_object('chat_ids', ${MILLION_IDS}))
       RETURNING broadcast_id`,
    );
    const admin = await startAdminServer(queue, { host: '127.0.0.1', port: 0, apiToken: TOKEN });
    try {
      const api = `${admin.url}/api/admin/queue`;
      const list = await get(`${api}/broadcasts/failed?limit=500`);
      assert.is(list.status, 200);
      assert.ok(Array.isArray(list.body), '/broadcasts/failed stays an array');
      assert.is(list.body.length, 4);
      assert.ok(list.bytes < 40_000, `the list is ${list.bytes} bytes`);
      const first = list.body[0];
      assert.equal([first.payload.chat_ids_count, first.payload.message, first.payload.note_bytes > 200_000, first.last_error], [1_000_000, { text: 'hi' }, true, 'content: too long']);

      const one = await get(`${api}/jobs/${jobId}`);
      assert.is(one.status, 200);
      assert.ok(one.bytes < 100_000, `one job is ${one.bytes} bytes`);
      assert.is(one.body.payload.chat_ids_count, 1_000_000);

      const retried = await get(`${api}/jobs/${idle.rows[0].job_id}/retry`, 'POST');
      assert.is(retried.status, 200);
      assert.ok(retried.bytes < 100_000, `the retry answer is ${retried.bytes} bytes`);
      assert.is(retried.body.job.payload.chat_ids_count, 1_000_000);

      const b = await get(`${api}/broadcasts/${broadcast.rows[0].broadcast_id}`);
      assert.is(b.status, 200);
      assert.ok(b.bytes < 100_000, `one broadcast is ${b.bytes} bytes`);
      assert.is(b.body.audience.chat_ids_count, 1_000_000);
      assert.is(b.body.message.text, 'hi');
      assert.is(b.body.message.reply_markup.inline_keyboard_count, 5000);
    } finally {
      await admin.close();
    }

    const cli = await runBqctl(['list', '--json', '--limit', '100'], { DATABASE_URL: db.url });
    assert.is(cli.code, 0, cli.stderr);
    assert.ok(cli.stdout.length < 100_000, `bqctl list printed ${cli.stdout.length} bytes`);
    assert.ok(json(cli).jobs.some((j: any) => j.payload.chat_ids_count === 1_000_000));
    const show = await runBqctl(['show', String(jobId), '--json'], { DATABASE_URL: db.url });
    assert.is(show.code, 0, show.stderr);
    assert.ok(show.stdout.length < 100_000, `bqctl show printed ${show.stdout.length} bytes`);
    const bshow = await runBqctl(['broadcast', 'list', '--json'], { DATABASE_URL: db.url });
    assert.is(bshow.code, 0, bshow.stderr);
    assert.ok(bshow.stdout.length < 100_000, `bqctl broadcast list printed ${bshow.stdout.length} bytes`);
  });
});

test.run();
