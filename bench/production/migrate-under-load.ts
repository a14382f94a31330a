// The longest INSERT wait while a migration builds an index on a jobs table of --rows rows: once as
// the migration runner used to run every file (CREATE INDEX in the migration's transaction), once
// as a no-transaction migration (CREATE INDEX CONCURRENTLY, src/db/migrate.ts). One client inserts
// a job at a time throughout.
//
//   npx tsc -p tsconfig.json && node dist/bench/production/migrate-under-load.js [--rows 2000000]
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { openServer } from '../db.js';
import { migrate } from '../../src/db/migrate.js';
import { createPool } from '../../src/db/pool.js';
import { silentLogger } from '../../src/log.js';

const { values: args } = parseArgs({ options: { rows: { type: 'string', default: '2000000' } } });

/** Inserts one job at a time until stopped; returns the longest single insert, in ms, and the count. */
function insertLoop(url: string): { stop(): Promise<{ longestMs: number; inserts: number }> } {
  const client = new pg.Client({ connectionString: url });
  let running = true;
  const done = (async () => {
    await client.connect();
    let longestMs = 0;
    let inserts = 0;
    while (running) {
      const started = performance.now();
      await client.query(`INSERT INTO broadcast_queue_jobs (job_type, queue) VALUES ('send', 'bench-idle')`);
      longestMs = Math.max(longestMs, performance.now() - started);
      inserts++;
    }
    await client.end();
    return { longestMs, inserts };
  })();
  return { async stop() { running = false; return done; } };
}

async function main(): Promise<void> {
  const server = await openServer();
  const name = await server.createDatabase('migrate_under_load');
  const url = server.urlFor(name);
  const pool = createPool({ connectionString: url, max: 2, applicationName: 'bq-bench-migrate', log: silentLogger() });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bq-bench-migrations-'));
  try {
    await migrate(pool, silentLogger());
    await pool.query(`INSERT INTO broadcast_queue_jobs (job_type, status, attempts, started_at, finished_at, payload)
                      SELECT 'send', 'completed', 1, now(), now(), jsonb_build_object('chat_id', g) FROM generate_series(1, $1::int) g`, [Number(args.rows)]);
    await pool.query('VACUUM ANALYZE broadcast_queue_jobs');
    console.log(`PostgreSQL ${server.version} (${server.origin}); ${args.rows} rows in broadcast_queue_jobs`);

    const index = `broadcast_queue_jobs ((payload ->> 'chat_id'))`;
    let loop = insertLoop(url);
    let started = performance.now();
    await pool.query(`BEGIN; CREATE INDEX bench_plain_idx ON ${index}; COMMIT;`);
    let buildMs = performance.now() - started;
    let seen = await loop.stop();
    console.log(`before (CREATE INDEX in the migration's transaction): build ${(buildMs / 1000).toFixed(1)} s, longest insert ${seen.longestMs.toFixed(0)} ms, ${seen.inserts} inserts`);
    await pool.query('DROP INDEX bench_plain_idx');

    await writeFile(path.join(dir, '9001_concurrent.sql'), `-- migrate: no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS bench_concurrent_idx ON ${index};\n`);
    loop = insertLoop(url);
    started = performance.now();
    await migrate(pool, silentLogger(), { dir });
    buildMs = performance.now() - started;
    seen = await loop.stop();
    console.log(`after (no-transaction migration, CREATE INDEX CONCURRENTLY): build ${(buildMs / 1000).toFixed(1)} s, longest insert ${seen.longestMs.toFixed(0)} ms, ${seen.inserts} inserts`);
  } finally {
    await pool.end();
    await rm(dir, { recursive: true, force: true });
    await server.close();
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
