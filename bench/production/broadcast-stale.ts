// Issue 13 item 2, end to end: the send rate of a whole broadcast whatever the planner believes
// about the ledger. One daemon sends N-recipient broadcasts through the Bot API stand-in (no limit
// there, a high one here, so the database side is what is measured), one after another, each after
// a different ANALYZE of broadcast_deliveries:
//   - never analyzed (the first broadcast on a new database),
//   - analyzed while the ledger was empty (TRUNCATE, then ANALYZE),
//   - analyzed while it held only an earlier broadcast (the production case that stalled for 90 s),
//   - analyzed again while it holds only an earlier broadcast, a second time (a repeat, for noise).
// Prints each broadcast's rate (recipients / (finished_at − started_at)) and its ratio to the best.
//
//   npx tsc -p tsconfig.json && node dist/bench/production/broadcast-stale.js [--recipients 50000]
//
// DATABASE_URL: a server where it may create a database; without it an embedded PostgreSQL (autovacuum
// on, as in production) is started. The machine is shared: read the ratios, not the rates.
import { parseArgs } from 'node:util';
import { BroadcastQueue } from '../../src/broadcast-queue.js';
import { migrate } from '../../src/db/migrate.js';
import { createPool } from '../../src/db/pool.js';
import { silentLogger } from '../../src/log.js';
import { FakeBotApi } from '../../src/testing/index.js';
import { openServer } from '../db.js';

const { values } = parseArgs({ options: { recipients: { type: 'string', default: '50000' } } });
const recipients = Number(values.recipients);
const TOKEN = '123456:BENCH-token-abcdefghijklmnopqrstuv';

async function main(): Promise<void> {
  const server = await openServer();
  const name = await server.createDatabase('broadcast_stale');
  const pool = createPool({ connectionString: server.urlFor(name), max: 2, applicationName: 'bq-bench-broadcast-stale', log: silentLogger() });
  const api = new FakeBotApi({ token: TOKEN });
  const apiRoot = await api.start();
  const queue = new BroadcastQueue({ connectionString: server.urlFor(name), telegram: { token: TOKEN, apiRoot }, rateLimit: 20_000, concurrency: 4, log: silentLogger() });
  try {
    await migrate(pool, silentLogger());
    console.log(`PostgreSQL ${server.version} (${server.origin}); ${recipients.toLocaleString('en')} recipients a broadcast`);
    await pool.query(`INSERT INTO broadcast_subscribers (chat_id, tags) SELECT g, '{all}' FROM generate_series(1, $1::int) g`, [recipients]);
    await queue.start();
    const states: [string, string | null][] = [
      ['never analyzed', null],
      ['analyzed while the ledger was empty', 'TRUNCATE broadcast_deliveries; ANALYZE broadcast_deliveries'],
      ['analyzed holding only an earlier broadcast', 'ANALYZE broadcast_deliveries'],
      ['the same, again', 'DELETE FROM broadcast_deliveries WHERE broadcast_id < (SELECT max(broadcast_id) FROM broadcasts); ANALYZE broadcast_deliveries'],
    ];
    const results: { state: string; rate: number; seconds: number }[] = [];
    for (const [state, prepare] of states) {
      if (prepare) await pool.query(prepare);
      const { rows } = await pool.query(`INSERT INTO broadcasts (title, message, audience) VALUES ($1, '{"text": "hello"}', '{"tags_any": ["all"]}') RETURNING broadcast_id`, [state]);
      const id = rows[0].broadcast_id;
      await pool.query(`INSERT INTO broadcast_queue_jobs (job_type, payload) VALUES ('broadcast', $1)`, [JSON.stringify({ broadcast_id: id })]);
      let row;
      for (;;) {
        row = (await pool.query(`SELECT status, sent, total, extract(epoch FROM finished_at - started_at)::float8 AS seconds FROM broadcasts WHERE broadcast_id = $1`, [id])).rows[0];
        if (['completed', 'failed', 'cancelled'].includes(row.status)) break;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      results.push({ state, rate: row.sent / row.seconds, seconds: row.seconds });
      console.log(`- ${state}: ${row.status}, ${row.sent}/${row.total} sent in ${row.seconds.toFixed(1)} s`);
    }
    const best = Math.max(...results.map((r) => r.rate));
    console.log('\n| statistics of the ledger | msg/s | ratio to best |\n|---|---|---|');
    for (const r of results) console.log(`| ${r.state} | ${r.rate.toFixed(0)} | ${(r.rate / best).toFixed(2)}× |`);
  } finally {
    await queue.stop();
    await api.stop();
    await pool.end();
    await server.close();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
