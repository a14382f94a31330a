// Subscriber import never stops halfway without saying so: every record is imported or rejected
// with its line number, whatever the file holds (NUL, over-long lines, unclosed quotes).
import { Readable } from 'node:stream';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { importSubscribers, ImportStoppedError, MAX_RECORD_BYTES, type ImportFormat, type Rejection } from '../../src/broadcast/import.js';
import { csvFields } from '../../src/broadcast/import-read.js';
import { PayloadError, RejectedRowError } from '../../src/errors.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

async function withDb(body: (db: TestDatabase) => Promise<void>): Promise<void> {
  const db = await createTestDatabase();
  try {
    await body(db);
  } finally {
    await db.drop();
  }
}

async function run(db: TestDatabase, format: ImportFormat, text: string | Buffer[], batchSize = 1000) {
  const rejections: Rejection[] = [];
  const input = Readable.from(typeof text === 'string' ? [Buffer.from(text)] : text);
  const stats = await importSubscribers(db.pool, input, { format, batchSize, onReject: (r) => rejections.push(r) });
  const ids = (await db.pool.query('SELECT chat_id FROM broadcast_subscribers ORDER BY chat_id')).rows.map((r) => Number(r.chat_id));
  return { stats, rejections, ids };
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_v, i) => from + i);

test('a NUL in one JSON-lines row rejects that row by line number; the other 1,999 are imported', async () => {
  await withDb(async (db) => {
    const lines = range(1, 2000).map((i) => JSON.stringify({ chat_id: i, tags: i === 1501 ? ['vip\u0000'] : ['vip'] }));
    const { stats, rejections, ids } = await run(db, 'jsonl', `${lines.join('\n')}\n`);
    assert.equal([stats.read, stats.imported, stats.rejected], [2000, 1999, 1]);
    assert.is(rejections[0]!.line, 1501);
    assert.match(rejections[0]!.reason, /"tags" contains a NUL character/);
    assert.equal(ids, range(1, 2000).filter((i) => i !== 1501));
  });
});

test('a value PostgreSQL refuses after validation costs its batch a retry row by row, and is rejected by line', async () => {
  await withDb(async (db) => {
    // Year 0 parses in JavaScript; PostgreSQL has no year 0.
    const lines = range(1, 30).map((i) => JSON.stringify({ chat_id: i, subscribed_at: i === 17 ? '0000-01-01' : '2024-01-01' }));
    const { stats, rejections, ids } = await run(db, 'jsonl', lines.join('\n'), 10);
    assert.equal([stats.read, stats.imported, stats.rejected], [30, 29, 1]);
    assert.is(rejections[0]!.line, 17);
    assert.match(rejections[0]!.reason, /^PostgreSQL refused the row: /);
    assert.equal(ids, range(1, 30).filter((i) => i !== 17));
  });
});

test(`a line over the ${MAX_RECORD_BYTES}-byte record limit is rejected by number, read in chunks, and the rest imports`, async () => {
  await withDb(async (db) => {
    // 4 MB in one line, arriving in 64 KiB chunks as a file would.
    const huge = JSON.stringify({ chat_id: 2, note: 'x'.repeat(4_000_000) });
    const text = Buffer.from(`{"chat_id": 1}\n${huge}\n{"chat_id": 3}\n`);
    const chunks = range(0, Math.ceil(text.length / 65536) - 1).map((i) => text.subarray(i * 65536, (i + 1) * 65536));
    const { stats, rejections, ids } = await run(db, 'jsonl', chunks);
    assert.equal([stats.read, stats.imported, stats.rejected], [3, 2, 1]);
    assert.is(rejections[0]!.line, 2);
    assert.ok(rejections[0]!.reason.startsWith(`longer than the 65,536-byte record limit (${huge.length.toLocaleString('en-US')} bytes)`), rejections[0]!.reason);
    assert.equal(ids, [1, 3]);

    const csv = await run(db, 'csv', `chat_id,note\n4,a\n5,${'y'.repeat(3_000_000)}\n6,c\n`);
    assert.equal([csv.stats.read, csv.stats.imported, csv.stats.rejected], [3, 2, 1]);
    assert.is(csv.rejections[0]!.line, 3);
    assert.equal(csv.ids, [1, 3, 4, 6]);
  });
});

test('a CSV quote never closed rejects the line it opens on; the rows after it are read and imported', async () => {
  await withDb(async (db) => {
    const rows = range(1, 12).map((i) => (i === 3 ? `${i},"unclosed` : `${i},t${i}`));
    const { stats, rejections, ids } = await run(db, 'csv', `chat_id,tags\n${rows.join('\n')}\n`);
    assert.equal([stats.read, stats.imported, stats.rejected], [12, 11, 1]);
    assert.is(rejections[0]!.line, 4);
    assert.match(rejections[0]!.reason, /a quote opened on this line is not closed before the end of the file; the line is skipped and reading goes on with line 5/);
    assert.equal(ids, range(1, 12).filter((i) => i !== 3));
  });
});

test('CSV: stray quotes that pair up across lines, a quote running past the record limit, and quoted newlines', async () => {
  await withDb(async (db) => {
    const filler = range(20, 2000).map((i) => `${i},"${'z'.repeat(40)}"`);
    const text = [
      'chat_id,note',
      '1,O"Brien', // a stray quote …
      '2,plain',
      '3,Mc"Kay', // … that pairs with this one: lines 2-4 frame as one record
      '4,"a ""quoted"" word"',
      '5,"two',
      'lines"',
      '6,"x"y',
      '7,"runaway', // never closed: runs into the record limit
      ...filler,
      '',
    ].join('\n');
    const { stats, rejections, ids } = await run(db, 'csv', text);
    assert.equal(rejections.map((r) => r.line), [2, 4, 8, 9], JSON.stringify(rejections));
    assert.match(rejections[0]!.reason, /^bad quoting: field 2 has a quote inside an unquoted value/);
    assert.match(rejections[2]!.reason, /^bad quoting: field 2 has text after its closing quote/);
    assert.match(rejections[3]!.reason, /not closed within the 65,536-byte record limit/);
    assert.equal([stats.read, stats.imported, stats.rejected], [3 + filler.length + 4, 3 + filler.length, 4]);
    assert.equal(ids, [2, 4, 5, ...range(20, 2000)]);
    const note = async (id: number) => (await db.pool.query('SELECT attributes->>$2 AS v FROM broadcast_subscribers WHERE chat_id = $1', [id, 'note'])).rows[0].v;
    assert.is(await note(4), 'a "quoted" word');
    assert.is(await note(5), 'two\nlines');
  });
});

test('strict mode names the line PostgreSQL refuses; a stream that fails midway says which rows were kept', async () => {
  await withDb(async (db) => {
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      const input = Readable.from([Buffer.from('{"chat_id": 1}\n{"chat_id": 2, "subscribed_at": "0000-01-01"}\n')]);
      const error = await importSubscribers(client, input, { format: 'jsonl', strict: true }).catch((e: unknown) => e);
      assert.instance(error, RejectedRowError);
      assert.is((error as RejectedRowError).rejection.line, 2);
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }

    async function* failing() {
      for (const i of range(1, 2500)) yield Buffer.from(`{"chat_id": ${i}}\n`);
      throw new Error('read error on the disk');
    }
    const error = await importSubscribers(db.pool, Readable.from(failing()), { format: 'jsonl', batchSize: 1000 }).catch((e: unknown) => e);
    assert.instance(error, ImportStoppedError);
    const stopped = error as ImportStoppedError;
    assert.match(stopped.message, /read error on the disk/);
    assert.is(stopped.keptThroughLine, 2000);
    assert.is(stopped.stats.imported, 2000);
    assert.is((await db.pool.query('SELECT count(*)::int AS n FROM broadcast_subscribers')).rows[0].n, 2000);
  });
});

test('a CSV header row that cannot be read ends the import before anything is written', async () => {
  await withDb(async (db) => {
    for (const [text, message] of [['chat_id,"tags\n1,a\n', /header row \(line 1\) has a quote that is not closed/], ['chat_id,"ta"gs\n1,a\n', /header row \(line 1\) cannot be read/], [`chat_id,${'x'.repeat(70_000)}\n1,a\n`, /header row \(line 1\) is longer than/]] as const) {
      const error = await run(db, 'csv', text).catch((e: unknown) => e);
      assert.instance(error, PayloadError);
      assert.match((error as Error).message, message);
    }
    assert.is((await db.pool.query('SELECT count(*)::int AS n FROM broadcast_subscribers')).rows[0].n, 0);
  });
});

test('a time_zone column sets where local-time broadcasts reach each subscriber; an unknown zone is rejected by line', async () => {
  await withDb(async (db) => {
    const csv = await run(db, 'csv', 'chat_id,time_zone\n1,Asia/Tokyo\n2, America/New_York \n3,Mars/Olympus\n4,\n');
    assert.equal([csv.stats.read, csv.stats.imported, csv.stats.rejected], [4, 3, 1]);
    assert.equal(csv.rejections, [{ line: 4, reason: 'time_zone must be an IANA time zone (e.g. Europe/Berlin, America/New_York, UTC), got string "Mars/Olympus"' }]);
    // A later file without the zone keeps it; one with a zone replaces it.
    await run(db, 'jsonl', '{"chat_id": 1, "tags": ["vip"]}\n{"chat_id": 4, "time_zone": "Europe/Berlin"}\n');
    const { rows } = await db.pool.query('SELECT chat_id, time_zone, attributes FROM broadcast_subscribers ORDER BY chat_id');
    assert.equal(rows.map((r) => [Number(r.chat_id), r.time_zone, r.attributes]), [[1, 'Asia/Tokyo', {}], [2, 'America/New_York', {}], [4, 'Europe/Berlin', {}]]);
  });
});

test('csvFields reads RFC 4180 fields', () => {
  assert.equal(csvFields('a,"b,c","d ""e""",,"multi\nline"'), ['a', 'b,c', 'd "e"', '', 'multi\nline']);
  assert.equal(csvFields(''), ['']);
  assert.throws(() => csvFields('a,b"c'), /quote inside an unquoted value/);
});

test.run();
