// `npm run demo`: the whole thing on one machine with nothing installed but Node. An embedded
// PostgreSQL, the Bot API stand-in and a real daemon; 10,000 subscribers, some of them blocked,
// migrated or flaky; one broadcast enqueued with plain SQL and watched with `bqctl watch`; then a
// tracked A/B test on the VIPs whose simulated recipients click one variant more, ending with the
// report and the winner sent to the rest.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, startEmbeddedPostgres } from '../db/embedded.js';
import { migrate } from '../db/migrate.js';
import { createPool } from '../db/pool.js';
import { createLogger } from '../log.js';
import { FakeBotApi, SimulatedRecipients } from '../testing/index.js';

const SUBSCRIBERS = 10_000;
const RATE = 250; // messages/s: the demo takes about 40 s; Telegram's own default is 30.
const TOKEN = '100200300:DEMO-token-not-a-real-bot-xyz';
const root = fileURLToPath(new URL('../../../', import.meta.url));
const keep = process.argv.includes('--keep');
const say = (text: string) => process.stdout.write(`${text}\n`);

async function main(): Promise<void> {
  const log = createLogger({ level: 'warn', name: 'demo', destination: process.stderr as never });
  const dataDir = path.resolve(process.env.BQ_DATA_DIR ?? path.join(root, '.bq-data', 'demo'));
  await mkdir(dataDir, { recursive: true });
  say(`1. Starting an embedded PostgreSQL in ${dataDir} …`);
  const db = await startEmbeddedPostgres({ dataDir, port: 0, log });
  const pool = createPool({ connectionString: db.connectionString, max: 2, applicationName: 'demo', log });
  await migrate(pool, log);

  // Telegram as our users see it: most chats fine, some gone, a few groups upgraded, a few flaky.
  const api = new FakeBotApi({ token: TOKEN, rateLimit: RATE, latencyMs: 20 });
  const apiRoot = await api.start();
  for (let chat = 1; chat <= SUBSCRIBERS; chat++) {
    if (chat % 50 === 0) api.setChatState(chat, 'blocked');
    else if (chat % 211 === 0) api.setChatState(chat, 'deactivated');
    else if (chat % 97 === 0) api.flaky(chat, 2, 502);
  }
  for (let group = 1; group <= 20; group++) api.migrate(-group, -1_000_000_000 - group);
  say(`2. Bot API stand-in at ${apiRoot} (limit ${RATE}/s; every 50th chat blocked, some deactivated, flaky or migrated)`);

  const httpPort = await freePort();
  const publicPort = await freePort();
  const publicUrl = `http://127.0.0.1:${publicPort}`;
  // Recipients who follow a tracked link: 1 in 20 of those sent variant A's text, 1 in 4 of B's.
  const people = new SimulatedRecipients(api, { publicUrl, clickRate: (text) => (text.startsWith('B:') ? 0.25 : text.startsWith('A:') ? 0.05 : 0), seed: 14 });
  // A token of this run's own: the dashboard's login link carries it in the fragment, which the browser keeps to itself.
  const apiToken = randomBytes(18).toString('base64url');
  const env = { ...process.env, DATABASE_URL: db.connectionString, TELEGRAM_BOT_TOKEN: TOKEN, TELEGRAM_API_ROOT: apiRoot, BQ_RATE_LIMIT: String(RATE), BQ_HTTP_PORT: String(httpPort), BQ_API_TOKEN: apiToken, BQ_CONCURRENCY: '2', LOG_LEVEL: 'warn',
    BQ_PUBLIC_URL: publicUrl, BQ_PUBLIC_PORT: String(publicPort), BQ_LINK_SECRET: randomBytes(24).toString('base64url') };
  const daemon = spawn(process.execPath, [path.join(root, 'bin', 'broadcast-queued')], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  const dashboard = `http://127.0.0.1:${httpPort}/`;
  say(`3. Daemon started (pid ${daemon.pid}); admin API on http://127.0.0.1:${httpPort}/api/admin/queue (token ${apiToken})`);
  say(`   Dashboard: ${dashboard}  — log in with the token, or open this login link:\n     ${dashboard}login#token=${apiToken}`);

  await pool.query(`
    INSERT INTO broadcast_subscribers (chat_id, language_code, tags, last_active_at)
    SELECT g, CASE WHEN g % 3 = 0 THEN 'de' ELSE 'en' END, ARRAY['demo'] || CASE WHEN g % 10 = 0 THEN ARRAY['vip'] ELSE '{}'::text[] END, now() - g * interval '1 minute'
      FROM generate_series(1, ${SUBSCRIBERS}) g
    UNION ALL SELECT -g, 'en', ARRAY['demo', 'groups'], now() FROM generate_series(1, 20) g
    ON CONFLICT (chat_id) DO NOTHING`);
  await pool.query(`UPDATE broadcast_subscribers SET opted_out = true WHERE chat_id % 499 = 0`);
  say(`4. Imported ${SUBSCRIBERS.toLocaleString('en')} subscribers and 20 groups (every 499th opted out)`);

  const created = await pool.query(`INSERT INTO broadcasts (title, message, audience) VALUES ('Demo announcement', '{"text": "Hello from <b>broadcast-queued</b>", "parse_mode": "HTML"}', '{"tags_any": ["demo"]}') RETURNING broadcast_id`);
  const broadcastId = created.rows[0].broadcast_id as number;
  await pool.query(`INSERT INTO broadcast_queue_jobs (job_type, payload) VALUES ('broadcast', $1)`, [{ broadcast_id: broadcastId }]);
  say(`5. Enqueued with plain SQL:\n     INSERT INTO broadcasts (title, message, audience) VALUES ('Demo announcement', '{"text": …}', '{"tags_any": ["demo"]}');\n     INSERT INTO broadcast_queue_jobs (job_type, payload) VALUES ('broadcast', '{"broadcast_id": ${broadcastId}}');\n`);

  const watch = spawn(process.execPath, [path.join(root, 'bin', 'bqctl'), 'watch', String(broadcastId)], { env, stdio: 'inherit' });
  const [watchCode] = (await once(watch, 'exit')) as [number | null];

  const final = (await pool.query('SELECT status, total, sent, failed, blocked, skipped, unknown FROM broadcasts WHERE broadcast_id = $1', [broadcastId])).rows[0];
  say(`\n6. Finished: ${JSON.stringify(final)}`);
  say(`   The stand-in received ${api.delivered.length.toLocaleString('en')} messages and answered ${api.tooManyRequests} × 429; busiest second: ${api.maxCallsInWindow(1000)} calls (limit ${RATE}).`);
  const abId = await abTest(pool, env, people);
  people.stop();
  say(`   The simulated recipients followed ${people.clicks.length} tracked links: ${people.clicks.filter((c) => c.text.startsWith('A:')).length} of variant A's, ${people.clicks.filter((c) => c.text.startsWith('B:')).length} of B's.`);

  say(`\nLook around while it runs${keep ? '' : ' (or run `npm run demo -- --keep` to keep it running)'}:`);
  say(`   BQ_DATA_DIR=${dataDir} npx bqctl status        # bqctl finds the embedded PostgreSQL itself`);
  say(`   BQ_DATA_DIR=${dataDir} npx bqctl broadcast show ${broadcastId}`);
  say(`   BQ_DATA_DIR=${dataDir} npx bqctl broadcast report ${abId}`);
  say(`   ${db.psqlHint}`);
  say(`   curl -s -H 'authorization: Bearer ${apiToken}' http://127.0.0.1:${httpPort}/api/admin/queue/broadcasts/${broadcastId}`);
  say(`   curl -s -H 'authorization: Bearer ${apiToken}' http://127.0.0.1:${httpPort}/metrics | grep broadcast_queue_`);
  say(`   ${dashboard}login#token=${apiToken}   # the dashboard${keep ? '' : ' (with --keep)'}`);

  if (keep) {
    say('\nEverything keeps running; press Ctrl-C to stop the daemon, the stand-in and PostgreSQL.');
    await Promise.race([once(process, 'SIGINT'), once(process, 'SIGTERM')]);
  }
  say('\nStopping the daemon, the stand-in and PostgreSQL …');
  await stop(daemon);
  await api.stop();
  await pool.end();
  await db.stop();
  say('Stopped. The data stays in ' + dataDir + '; delete it to start afresh.');
  process.exitCode = watchCode === 0 ? 0 : 1;
}

/** Step 7: a tracked A/B test on the VIPs, 20 % sample, decided 10 s later; prints the report. */
async function abTest(pool: ReturnType<typeof createPool>, env: NodeJS.ProcessEnv, people: SimulatedRecipients): Promise<number> {
  const offer = (label: string, path: string) => ({ text: `${label}: spring sale, 20 % off`, entities: [{ type: 'text_link', offset: 0, length: label.length, url: `https://shop.example.com/${path}` }] });
  const variants = [{ name: 'A', weight: 1, message: offer('A', 'sale') }, { name: 'B', weight: 1, message: offer('B', 'sale?b') }];
  const ab = { sample_percent: 20, metric: 'ctr', decide_after: '10s', fallback: 'A' };
  const created = await pool.query(
    `INSERT INTO broadcasts (title, variants, audience, track, ab_test) VALUES ('Spring sale A/B', $1, '{"tags_any": ["vip"]}', true, $2) RETURNING broadcast_id`,
    [JSON.stringify(variants), ab],
  );
  const id = created.rows[0].broadcast_id as number;
  await pool.query(`INSERT INTO broadcast_queue_jobs (job_type, payload) VALUES ('broadcast', $1)`, [{ broadcast_id: id }]);
  say(`\n7. A tracked A/B test on the 1,000 VIPs: variants to a 20 % sample, the winner to the rest after 10 s:\n     INSERT INTO broadcasts (title, variants, audience, track, ab_test) VALUES ('Spring sale A/B', '[{"name": "A", …}, {"name": "B", …}]',\n       '{"tags_any": ["vip"]}', true, '${JSON.stringify(ab)}');\n`);
  const watch = spawn(process.execPath, [path.join(root, 'bin', 'bqctl'), 'watch', String(id)], { env, stdio: 'inherit' });
  await once(watch, 'exit');
  await people.settled();
  // Clicks reach the database every 250 ms; the report is read after the last of them.
  await new Promise((resolve) => setTimeout(resolve, 500));
  const report = spawn(process.execPath, [path.join(root, 'bin', 'bqctl'), 'broadcast', 'report', String(id)], { env, stdio: 'inherit' });
  await once(report, 'exit');
  return id;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  child.kill('SIGTERM');
  await once(child, 'exit');
}

main().catch((error) => {
  process.stderr.write(`demo failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
