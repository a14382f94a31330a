import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { createPool, type Pool } from '../../src/db/pool.js';
import { listMigrations, migrate, migrationState, noTransactionSteps } from '../../src/db/migrate.js';
import { silentLogger } from '../../src/log.js';
import { NOTIFY_CHANNEL } from '../../src/queue/listener.js';
import { createTestDatabase } from '../helpers/db.js';
import { waitForEvent } from '../helpers/wait.js';

test('two migrators starting together apply each migration once', async () => {
  const db = await createTestDatabase({ migrated: false });
  const pools = [0, 1, 2].map(() => createPool({ connectionString: db.url, max: 2, applicationName: 'migrate-test', log: silentLogger() }));
  try {
    const applied = await Promise.all(pools.map((p) => migrate(p, silentLogger())));
    const known = await listMigrations();
    assert.is(applied.flat().length, known.length, 'each migration applied by exactly one migrator');
    const state = await migrationState(db.pool);
    assert.equal(state.applied, known.map((m) => m.version));
    assert.equal(state.pending, []);
    // An insert notifies, once per statement, with the queue's name as the payload.
    const listener = new pg.Client({ connectionString: db.url });
    await listener.connect();
    try {
      await listener.query(`LISTEN ${NOTIFY_CHANNEL}`);
      const notified = waitForEvent<pg.Notification>(listener, 'notification');
      await db.pool.query(`INSERT INTO broadcast_queue_jobs (queue, job_type) VALUES ('mail', 'send'), ('mail', 'send')`);
      const notification = await notified;
      assert.equal([notification.channel, notification.payload], [NOTIFY_CHANNEL, 'mail']);
    } finally {
      await listener.end();
    }
    const trig = await db.pool.query(`SELECT tgname FROM pg_trigger WHERE tgrelid = 'broadcast_queue_jobs'::regclass AND NOT tgisinternal ORDER BY tgname`);
    assert.equal(trig.rows.map((r) => r.tgname), ['_050_offer_picked', '_100_dependencies_checked', '_100_dependencies_checked_again', '_100_dependencies_fixed', '_200_count_deleted', '_200_count_inserted', '_200_count_truncated', '_200_count_updated', '_300_dependents_resolved', '_400_paused_job_resumed', '_800_handed_over', '_900_notify_due_again', '_900_notify_inserted']);
  } finally {
    await Promise.all(pools.map((p) => p.end()));
    await db.drop();
  }
});

test('an unmigrated database reports every migration pending', async () => {
  const db = await createTestDatabase({ migrated: false });
  try {
    const state = await migrationState(db.pool);
    assert.equal(state.applied, []);
    assert.is(state.pending.length, (await listMigrations()).length);
  } finally {
    await db.drop();
  }
});

const CONCURRENT_MIGRATION = `-- migrate: no-transaction
-- A test migration: an index built while other clients write.
CREATE INDEX CONCURRENTLY IF NOT EXISTS test_jobs_payload_idx ON broadcast_queue_jobs ((payload ->> 'n'));
-- migrate: step
COMMENT ON INDEX test_jobs_payload_idx IS 'built concurrently';
`;

/** A directory of migrations: every real one plus 9001, built concurrently. */
async function migrationsWithConcurrentIndex(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bq-migrations-'));
  for (const m of await listMigrations()) await writeFile(path.join(dir, path.basename(m.file)), await readFile(m.file));
  await writeFile(path.join(dir, '9001_concurrent_index.sql'), CONCURRENT_MIGRATION);
  return dir;
}

/** Waits until the backend building the index is waiting on a lock (the open transaction we hold). */
async function buildWaiting(pool: Pool): Promise<number> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const { rows } = await pool.query(
      `SELECT pid FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE '%CREATE INDEX CONCURRENTLY%' AND wait_event_type = 'Lock'`,
    );
    if (rows[0]) return rows[0].pid;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('the concurrent build never waited on the open transaction');
}

test('an index built concurrently by a migration lets INSERTs through while it waits, and is recorded once built', async () => {
  const db = await createTestDatabase();
  const dir = await migrationsWithConcurrentIndex();
  const holder = new pg.Client({ connectionString: db.url });
  const inserter = new pg.Client({ connectionString: db.url });
  const migrator = createPool({ connectionString: db.url, max: 2, applicationName: 'migrate-test', log: silentLogger() });
  try {
    await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, payload) SELECT 'custom', jsonb_build_object('n', g) FROM generate_series(1, 5000) g`);
    await Promise.all([holder.connect(), inserter.connect()]);
    // A writer's open transaction: the concurrent build waits for it, and we decide when it ends.
    await holder.query('BEGIN');
    await holder.query(`INSERT INTO broadcast_queue_jobs (job_type) VALUES ('custom')`);
    const events: string[] = [];
    const migrating = migrate(migrator, silentLogger(), { dir }).then((applied) => {
      events.push('migration finished');
      return applied;
    });
    await buildWaiting(db.pool);
    // A plain CREATE INDEX inside a transaction would make this INSERT wait until the build ends.
    await inserter.query(`INSERT INTO broadcast_queue_jobs (job_type, payload) VALUES ('custom', '{"n": -1}')`);
    events.push('insert committed');
    await holder.query('COMMIT');
    const applied = await migrating;
    assert.equal(events, ['insert committed', 'migration finished']);
    assert.equal(applied.map((m) => m.version), [9001]);
    const index = await db.pool.query(`SELECT i.indisvalid, obj_description(i.indexrelid, 'pg_class') AS comment FROM pg_index i WHERE i.indexrelid = 'test_jobs_payload_idx'::regclass`);
    assert.equal(index.rows[0], { indisvalid: true, comment: 'built concurrently' });
    assert.equal((await migrationState(db.pool)).applied.slice(-1), [9001]);
  } finally {
    await holder.end().catch(() => undefined);
    await inserter.end().catch(() => undefined);
    await migrator.end();
    await rm(dir, { recursive: true, force: true });
    await db.drop();
  }
});

test('an interrupted concurrent build is not recorded, and the next run drops its invalid index and builds it again', async () => {
  const db = await createTestDatabase();
  const dir = await migrationsWithConcurrentIndex();
  const holder = new pg.Client({ connectionString: db.url });
  const migrator = createPool({ connectionString: db.url, max: 2, applicationName: 'migrate-test', log: silentLogger() });
  try {
    await db.pool.query(`INSERT INTO broadcast_queue_jobs (job_type, payload) SELECT 'custom', jsonb_build_object('n', g) FROM generate_series(1, 1000) g`);
    await holder.connect();
    await holder.query('BEGIN');
    await holder.query(`INSERT INTO broadcast_queue_jobs (job_type) VALUES ('custom')`);
    const first = migrate(migrator, silentLogger(), { dir }).then(() => null, (error: Error) => error);
    const pid = await buildWaiting(db.pool);
    await db.pool.query('SELECT pg_cancel_backend($1)', [pid]);
    const error = await first;
    assert.match(String(error?.message), /9001_concurrent_index\.sql failed \(not recorded; the next run resumes it\)/);
    const left = await db.pool.query(`SELECT indisvalid FROM pg_index WHERE indexrelid = 'test_jobs_payload_idx'::regclass`);
    assert.equal(left.rows, [{ indisvalid: false }], 'the interrupted build left an invalid index');
    assert.not.ok((await migrationState(db.pool)).applied.includes(9001));
    await holder.query('COMMIT');

    const applied = await migrate(migrator, silentLogger(), { dir });
    assert.equal(applied.map((m) => m.version), [9001]);
    const rebuilt = await db.pool.query(`SELECT indisvalid FROM pg_index WHERE indexrelid = 'test_jobs_payload_idx'::regclass`);
    assert.equal(rebuilt.rows, [{ indisvalid: true }]);
  } finally {
    await holder.end().catch(() => undefined);
    await migrator.end();
    await rm(dir, { recursive: true, force: true });
    await db.drop();
  }
});

test('a concurrent build without IF NOT EXISTS is refused, since it could not resume', async () => {
  assert.throws(() => noTransactionSteps('-- migrate: no-transaction\nCREATE INDEX CONCURRENTLY x ON t (a);', '9002_x.sql'), /IF NOT EXISTS/);
  assert.is(noTransactionSteps('CREATE INDEX x ON t (a);', '9003_y.sql'), null);
});

test.run();
