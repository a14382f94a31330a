import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type { Pool } from './pool.js';
import type { Logger } from '../log.js';

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

export async function listMigrations(): Promise<Migration[]> {
  const files = (await readdir(SQL_DIR)).filter((f) => MIGRATION_FILE.test(f)).sort();
  return files.map((file) => {
    const [, version, name] = MIGRATION_FILE.exec(file)!;
    return { version: Number(version), name: name!, file: path.join(SQL_DIR, file) };
  });
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
 * Applies every pending migration, each in its own transaction. A session advisory lock makes
 * concurrent callers (two daemons starting together, bqctl migrate) take turns; the second one
 * finds nothing left to do.
 */
export async function migrate(pool: Pool, log: Logger): Promise<Migration[]> {
  const client = await pool.connect();
  const appliedNow: Migration[] = [];
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    try {
      await client.query(CREATE_MIGRATIONS_TABLE);
      const done = new Set(
        (await client.query('SELECT version FROM broadcast_queue_migrations')).rows.map((r) => r.version as number),
      );
      for (const migration of await listMigrations()) {
        if (done.has(migration.version)) continue;
        const sql = await readFile(migration.file, 'utf8');
        await client.query('BEGIN');
        try {
          // Recorded first so that a second migrator that somehow bypassed the lock fails on the key.
          await client.query('INSERT INTO broadcast_queue_migrations (version, name) VALUES ($1, $2)', [
            migration.version,
            migration.name,
          ]);
          await client.query(sql);
          await client.query('COMMIT');
        } catch (error) {
          await client.query('ROLLBACK');
          throw new Error(`migration ${path.basename(migration.file)} failed: ${(error as Error).message}`);
        }
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
