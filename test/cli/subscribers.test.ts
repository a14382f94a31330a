import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { json, bqctlInProcess, runBqctl } from './run-bqctl.js';

async function withDb(body: (db: TestDatabase, env: Record<string, string>, dir: string) => Promise<void>): Promise<void> {
  const db = await createTestDatabase();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bqctl-subscribers-'));
  try {
    await body(db, { DATABASE_URL: db.url }, dir);
  } finally {
    await db.drop();
    await rm(dir, { recursive: true, force: true });
  }
}

const subscribers = async (db: TestDatabase) =>
  (await db.pool.query(`SELECT chat_id, language_code, tags, opted_out, attributes, to_char(subscribed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS subscribed, last_active_at IS NOT NULL AS active FROM broadcast_subscribers ORDER BY chat_id`)).rows;

test('subscribers import of a CSV upserts rows in batches and reports rejected lines with their numbers', async () => {
  await withDb(async (db, env, dir) => {
    await db.pool.query(`INSERT INTO broadcast_subscribers (chat_id, language_code, tags, attributes) VALUES (2, 'de', '{old}', '{"city": "Berlin"}')`);
    const file = path.join(dir, 'users.csv');
    await writeFile(file, [
      'chat_id,language_code,tags,opted_out,subscribed_at,last_active_at,plan',
      '1,en,vip;beta,false,2024-01-02,2024-05-01T10:00:00Z,pro',
      '2,,news|vip,yes,,,free',
      'abc,en,,,,,',
      '3,pt-BR,,maybe,,,',
      '4,en,,,not-a-date,,',
      '5,en,x,false,,,,extra',
      '"6","fr","a; b ;","0","","","quoted, with comma"',
      '1,en,vip,false,2024-01-02,,pro', // a duplicate in the same batch: the last row wins
      '',
    ].join('\n'));
    const result = await runBqctl(['subscribers', 'import', file, '--batch-size', '3'], env);
    assert.is(result.code, 0, result.stderr);
    assert.match(result.stderr, /users\.csv: line 4: chat_id must be an integer, got string "abc"/);
    assert.match(result.stderr, /line 5: opted_out must be true or false, got string "maybe"/);
    assert.match(result.stderr, /line 6: subscribed_at must be an ISO 8601 date/);
    assert.match(result.stderr, /line 7: has 8 fields where the header has 7/);
    assert.match(result.stderr, /read 8 records: imported 4 rows \([\d,]+\/s\): \d+ new, \d+ updated; 4 rejected/);
    assert.equal(await subscribers(db), [
      { chat_id: 1, language_code: 'en', tags: ['vip'], opted_out: false, attributes: { plan: 'pro' }, subscribed: '2024-01-02', active: true },
      // Empty cells keep what was stored; attributes merge.
      { chat_id: 2, language_code: 'de', tags: ['news', 'vip'], opted_out: true, attributes: { city: 'Berlin', plan: 'free' }, subscribed: (await subscribers(db))[1].subscribed, active: false },
      { chat_id: 6, language_code: 'fr', tags: ['a', 'b'], opted_out: false, attributes: { plan: 'quoted, with comma' }, subscribed: (await subscribers(db))[2].subscribed, active: false },
    ]);

    const asJson = json(await runBqctl(['subscribers', 'import', file, '--json'], env));
    assert.equal([asJson.format, asJson.imported, asJson.rejected, asJson.inserted, asJson.updated], ['csv', 4, 4, 0, 4]);
    assert.equal(asJson.rejections.map((r: any) => r.line), [4, 5, 6, 7]);

    const noHeader = path.join(dir, 'noheader.csv');
    await writeFile(noHeader, 'id,tags\n1,a\n');
    const bad = await runBqctl(['subscribers', 'import', noHeader], env);
    assert.is(bad.code, 2);
    assert.match(bad.stderr, /no chat_id column/);
    assert.is((await bqctlInProcess(['subscribers', 'import', path.join(dir, 'missing.csv')], env)).code, 2);
  });
});

test('subscribers import of JSON lines, from a file and from stdin, and --strict imports nothing on a bad row', async () => {
  await withDb(async (db, env, dir) => {
    const file = path.join(dir, 'users.jsonl');
    await writeFile(file, [
      JSON.stringify({ chat_id: 10, language_code: 'en', tags: ['vip'], attributes: { plan: 'pro' }, city: 'Lisbon' }),
      '{"chat_id": "11", "tags": "a|b", "opted_out": true}',
      '{not json',
      '[1, 2]',
      JSON.stringify({ chat_id: 0 }),
      '',
      JSON.stringify({ chat_id: 12, last_active_at: '2024-06-01T00:00:00Z' }),
    ].join('\n'));
    const result = json(await runBqctl(['subscribers', 'import', file, '--json'], env));
    assert.equal([result.format, result.imported, result.inserted, result.rejected], ['jsonl', 3, 3, 3]);
    assert.equal(result.rejections.map((r: any) => r.line), [3, 4, 5]);
    assert.match(result.rejections[2].reason, /chat_id must be a non-zero integer/);
    const rows = await subscribers(db);
    assert.equal(rows.map((r) => [r.chat_id, r.tags, r.opted_out, r.attributes, r.active]), [
      [10, ['vip'], false, { plan: 'pro', city: 'Lisbon' }, false],
      [11, ['a', 'b'], true, {}, false],
      [12, [], false, {}, true],
    ]);

    // stdin, format detected from the first character; and CSV on stdin.
    const piped = await runBqctl(['subscribers', 'import', '-', '--json'], env, '{"chat_id": 20}\n{"chat_id": 21, "language_code": "es"}\n');
    assert.is(piped.code, 0, piped.stderr);
    assert.equal([json(piped).format, json(piped).imported], ['jsonl', 2]);
    const csv = await runBqctl(['subscribers', 'import'], env, 'chat_id,tags\n30,x\n31,y\n');
    assert.is(csv.code, 0, csv.stderr);
    assert.match(csv.stderr, /imported 2 rows/);
    assert.is((await db.pool.query('SELECT count(*)::int AS n FROM broadcast_subscribers')).rows[0].n, 7);

    const strict = await runBqctl(['subscribers', 'import', '--strict', '--format', 'csv', '--batch-size', '1'], env, 'chat_id\n40\n41\nxx\n42\n');
    assert.is(strict.code, 1);
    assert.match(strict.stderr, /stdin: line 4: chat_id must be an integer, got string "xx"; nothing was imported \(--strict\)/);
    assert.is((await db.pool.query('SELECT count(*)::int AS n FROM broadcast_subscribers WHERE chat_id >= 40')).rows[0].n, 0);
    assert.is((await bqctlInProcess(['subscribers', 'import', '--format', 'xml'], env)).code, 2);
  });
});

test('subscribers import: a NUL on line 1501 of 2,000 JSON lines is one rejection naming the line; the summary counts read, imported, rejected', async () => {
  await withDb(async (db, env, dir) => {
    const file = path.join(dir, 'nul.jsonl');
    await writeFile(file, Array.from({ length: 2000 }, (_v, i) => JSON.stringify({ chat_id: i + 1, tags: [i + 1 === 1501 ? 'a\u0000b' : 'vip'] })).join('\n'));
    const result = await runBqctl(['subscribers', 'import', file], env);
    assert.is(result.code, 0, result.stderr);
    assert.match(result.stderr, /nul\.jsonl: line 1501: "tags" contains a NUL character/);
    assert.match(result.stderr, /read 2,000 records: imported 1,999 rows .*; 1 rejected/);
    assert.is((await db.pool.query('SELECT count(*)::int AS n FROM broadcast_subscribers')).rows[0].n, 1999);
  });
});

test('subscribers count reports total, reachable, opted out and unreachable for a segment', async () => {
  await withDb(async (db, env) => {
    await db.pool.query(`INSERT INTO broadcast_subscribers (chat_id, tags, opted_out, unreachable_reason) VALUES
      (1, '{vip}', false, NULL), (2, '{vip}', true, NULL), (3, '{vip}', false, 'blocked'), (4, '{}', false, NULL)`);
    assert.equal(json(await runBqctl(['subscribers', 'count', '--segment', '{"tags_any":["vip"]}', '--json'], env)), { total: 3, reachable: 1, opted_out: 1, unreachable: 1 });
    const all = await runBqctl(['subscribers', 'count'], env);
    assert.is(all.code, 0, all.stderr);
    assert.match(all.stdout, /total 4\nreachable 2/);
    const bad = await bqctlInProcess(['subscribers', 'count', '--segment', '{"tags_any":[]}'], env);
    assert.is(bad.code, 2);
    assert.match(bad.stderr, /--segment.tags_any must be a non-empty array/);
    assert.match((await bqctlInProcess(['subscribers', 'count', '--help'])).stdout, /active_within_days/);
  });
});

test.run();
