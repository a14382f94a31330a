// The jobs list pages by key, never by OFFSET, and a page over finished jobs looks through a
// bounded window of ids, saying where to go on (searchJobs in queue/jobs-store.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createTestDatabase } from '../helpers/db.js';
import { searchJobs, SEARCH_WINDOW_IDS } from '../../src/queue/jobs-store.js';
import { insertFinishedJob } from './helpers.js';

test('pages follow each other by key: every job once, newest first, and the last page says so', async () => {
  const db = await createTestDatabase();
  try {
    for (let i = 0; i < 120; i++) await insertFinishedJob(db, i % 3 ? 'completed' : 'failed', { i });
    const seen: number[] = [];
    let before: number | undefined;
    for (;;) {
      const page = await searchJobs(db.pool, before === undefined ? {} : { before }, 50);
      seen.push(...page.jobs.map((j) => j.job_id));
      if (page.nextBefore === null) break;
      before = page.nextBefore;
    }
    assert.is(seen.length, 120);
    assert.equal(seen, [...seen].sort((a, b) => b - a));
    assert.is(new Set(seen).size, 120);
    const failed = await searchJobs(db.pool, { statuses: ['failed'] }, 100);
    assert.is(failed.jobs.length, 40);
    assert.ok(failed.jobs.every((j) => j.status === 'failed'));
  } finally {
    await db.drop();
  }
});

test('a rare match beyond one window is found on a later page, not by scanning the table for one', async () => {
  const db = await createTestDatabase();
  try {
    const needle = await insertFinishedJob(db, 'failed', { order: 'needle' }, 'card declined');
    await db.pool.query(`SELECT setval(pg_get_serial_sequence('broadcast_queue_jobs', 'job_id'), $1)`, [needle + SEARCH_WINDOW_IDS + 100]);
    for (let i = 0; i < 3; i++) await insertFinishedJob(db, 'completed', { order: `hay-${i}` });
    const first = await searchJobs(db.pool, { text: 'needle' }, 50);
    assert.equal(first.jobs, []);
    assert.ok(first.nextBefore !== null && first.nextBefore > needle, 'the first page stops at its window and says where to go on');
    const second = await searchJobs(db.pool, { text: 'needle', before: first.nextBefore! }, 50);
    assert.equal(second.jobs.map((j) => j.job_id), [needle]);
    assert.is(second.nextBefore, null);
    // The text is literal: a % or _ matches only itself.
    assert.equal((await searchJobs(db.pool, { text: 'card%', before: first.nextBefore! }, 50)).jobs, []);
    assert.equal((await searchJobs(db.pool, { text: 'CARD DECLINED', before: first.nextBefore! }, 50)).jobs.map((j) => j.job_id), [needle]);
  } finally {
    await db.drop();
  }
});

test.run();
