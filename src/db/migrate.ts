import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type { Pool, PoolClient } from './pool.js';
import type { Logger } from '../log.js';
import { sleep } from '../time.js';

// The package root is three levels above dist/src/db/.
const SQL_DIR = fileURLToPath(new URL('../../../sql/', import.meta.url));
const MIGRATION_FILE = /^(\d{4})_([a-z0-9_]+)\.sql$/;
// Any constant works; it only has to be the same for every daemon and bqctl.
const MIGRATION_LOCK_KEY = 7_482_190_331;

export interface Migration {
  version: number;
  name: string;
  file: string;
}

export interface MigrationState {
  applied: number[];
  pending: Migration[];
  /** Versions recorded in the database that this build does not know: a newer build migrated it. */
  unknown: number[];
}

export async function listMigrations(dir = SQL_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => MIGRATION_FILE.test(f)).sort();
  return files.map((file) => {
    const [, version, name] = MIGRATION_FILE.exec(file)!;
    return { version: Number(version), name: name!, file: path.join(dir, file) };
  });
}

// A migration whose first line is this runs outside a transaction, one step at a time, for what
// PostgreSQL refuses inside one: CREATE INDEX CONCURRENTLY, which builds an index on a large table
// without the lock that stops INSERT (a plain CREATE INDEX holds it for the whole build: seconds at
// a million rows). Steps are separated by STEP_MARKER lines and must be safe to run again (IF NOT
// EXISTS …): an interrupted migration is not recorded, so the next run starts it over.
const NO_TRANSACTION_MARKER = /^-- migrate: no-transaction\s*$/m;
const STEP_MARKER = /^-- migrate: step\s*$/m;
const CONCURRENT_INDEX = /\bCREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+IF\s+NOT\s+EXISTS\s+("?)([a-z_][a-z0-9_]*)\1/i;
const CONCURRENT_INDEX_WITHOUT_GUARD = /\bCREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+(?!IF\s+NOT\s+EXISTS)/i;

/** The steps of a no-transaction migration, or null for an ordinary one. */
export function noTransactionSteps(sql: string, file: string): string[] | null {
  if (!NO_TRANSACTION_MARKER.test(sql.split('\n', 1)[0] ?? '')) return null;
  const steps = sql.split(STEP_MARKER).map((s) => s.trim()).filter((s) => s.replace(/--.*$/gm, '').trim() !== '');
  for (const step of steps) {
    // Without IF NOT EXISTS a resumed run would fail on the index the first run finished.
    if (CONCURRENT_INDEX_WITHOUT_GUARD.test(step)) throw new Error(`${path.basename(file)}: write CREATE INDEX CONCURRENTLY IF NOT EXISTS, so that an interrupted run can resume`);
  }
  return steps;
}

const CREATE_MIGRATIONS_TABLE = `
  CREATE TABLE IF NOT EXISTS broadcast_queue_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
  )`;

export async function migrationState(pool: Pool): Promise<MigrationState> {
  const known = await listMigrations();
  const exists = await pool.query(`SELECT to_regclass('broadcast_queue_migrations') IS NOT NULL AS present`);
  const applied: number[] = exists.rows[0].present
    ? (await pool.query('SELECT version FROM broadcast_queue_migrations ORDER BY version')).rows.map((r) => r.version)
    : [];
  const appliedSet = new Set(applied);
  const knownSet = new Set(known.map((m) => m.version));
  return {
    applied,
    pending: known.filter((m) => !appliedSet.has(m.version)),
    unknown: applied.filter((v) => !knownSet.has(v)),
  };
}

/**
 * Applies every pending migration, each in its own transaction (or step by step, for a
 * no-transaction migration). A session advisory lock makes concurrent callers (two daemons starting
 * together, bqctl migrate) take turns; the second one finds nothing left to do.
 */
export async function migrate(pool: Pool, log: Logger, options: { dir?: string } = {}): Promise<Migration[]> {
  const client = await pool.connect();
  const appliedNow: Migration[] = [];
  try {
    await takeMigrationLock(client);
    try {
      await client.query(CREATE_MIGRATIONS_TABLE);
      const done = new Set(
        (await client.query('SELECT version FROM broadcast_queue_migrations')).rows.map((r) => r.version as number),
      );
      for (const migration of await listMigrations(options.dir)) {
        if (done.has(migration.version)) continue;
        const sql = await readFile(migration.file, 'utf8');
        const steps = noTransactionSteps(sql, migration.file);
        if (steps) await runSteps(client, migration, steps, log);
        else await runInTransaction(client, migration, sql);
        log.info({ version: migration.version, migration: migration.name }, 'migration applied');
        appliedNow.push(migration);
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
    }
  } finally {
    client.release();
  }
  return appliedNow;
}

/**
 * Waits for the migration lock by asking again every MIGRATION_LOCK_POLL_MS rather than in
 * pg_advisory_lock. A session waiting inside a statement holds a snapshot, and CREATE INDEX
 * CONCURRENTLY, run by the migrator that has the lock, waits for every older snapshot to go: the
 * two waited for each other and PostgreSQL broke the deadlock by failing one (two daemons starting
 * together on sql/0010). Between two tries a waiting session holds nothing.
 */
async function takeMigrationLock(client: PoolClient): Promise<void> {
  for (;;) {
    const { rows } = await client.query('SELECT pg_try_advisory_lock($1) AS locked', [MIGRATION_LOCK_KEY]);
    if (rows[0].locked) return;
    await sleep(MIGRATION_LOCK_POLL_MS);
  }
}

const MIGRATION_LOCK_POLL_MS = 200;

async function runInTransaction(client: PoolClient, migration: Migration, sql: string): Promise<void> {
  await client.query('BEGIN');
  try {
    // Recorded first so that a second migrator that somehow bypassed the lock fails on the key.
    await client.query('INSERT INTO broadcast_queue_migrations (version, name) VALUES ($1, $2)', [migration.version, migration.name]);
    await client.query(sql);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK');
    throw new Error(`migration ${path.basename(migration.file)} failed: ${(error as Error).message}`);
  }
}

/**
 * Runs each step on its own (autocommit), then records the version. An index that an interrupted
 * CREATE INDEX CONCURRENTLY left behind is INVALID: never used by queries, yet maintained by every
 * INSERT, and IF NOT EXISTS would keep it. It is dropped (concurrently too) before the step runs
 * again.
 */
async function runSteps(client: PoolClient, migration: Migration, steps: string[], log: Logger): Promise<void> {
  try {
    for (const step of steps) {
      const index = CONCURRENT_INDEX.exec(step)?.[2];
      if (index && (await dropInvalidIndex(client, index))) {
        log.warn({ version: migration.version, index }, 'migration: dropped an invalid index left by an interrupted build; building it again');
      }
      await client.query(step);
    }
    await client.query('INSERT INTO broadcast_queue_migrations (version, name) VALUES ($1, $2)', [migration.version, migration.name]);
  } catch (error) {
    // A step may have opened a transaction of its own; leave the session clean for the unlock.
    await client.query('ROLLBACK').catch(() => undefined);
    throw new Error(`migration ${path.basename(migration.file)} failed (not recorded; the next run resumes it): ${(error as Error).message}`);
  }
}

async function dropInvalidIndex(client: PoolClient, index: string): Promise<boolean> {
  const { rows } = await client.query(
    `SELECT 1 FROM pg_index WHERE indexrelid = to_regclass($1) AND NOT indisvalid`,
    [index],
  );
  if (rows.length === 0) return false;
  await client.query(`DROP INDEX CONCURRENTLY IF EXISTS ${client.escapeIdentifier(index)}`);
  return true;
}
