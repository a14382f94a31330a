import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { finishedJobsCleanup } from '../../src/queue/cleaner.js';
import { Maintenance } from '../../src/queue/maintenance.js';
import { silentLogger } from '../../src/log.js';
import { createTestDatabase } from '../helpers/db.js';

test('the cleaner deletes per-chat pacing rows nobody can need any more', async () => {
  const db = await createTestDatabase();
  try {
    await db.pool.query(`INSERT INTO broadcast_chat_pacing (bot_id, chat_id, next_allowed_at)
                         SELECT 1, g, now() - interval '2 minutes' FROM generate_series(1, 2500) g
                         UNION ALL SELECT 1, 9999, now() + interval '1 second'`);
    await new Maintenance([finishedJobsCleanup(db.pool, 7)], silentLogger()).runOnce();
    const { rows } = await db.pool.query('SELECT chat_id FROM broadcast_chat_pacing');
    assert.equal(rows, [{ chat_id: 9999 }]);
  } finally {
    await db.drop();
  }
});

test.run();
