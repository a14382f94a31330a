import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createPool } from '../../src/db/pool.js';
import { listMigrations, migrate, migrationState } from '../../src/db/migrate.js';
import { silentLogger } from '../../src/log.js';
import { createTestDatabase } from '../helpers/db.js';

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
    // The trigger is in place: an insert notifies.
    const trig = await db.pool.query(`SELECT tgname FROM pg_trigger WHERE tgrelid = 'broadcast_queue_jobs'::regclass AND NOT tgisinternal ORDER BY tgname`);
    assert.equal(trig.rows.map((r) => r.tgname), ['_900_notify_due_again', '_900_notify_inserted']);
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

test.run();
