import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AUDIENCE_FILTERS, buildAudienceQuery, countAudience, parseAudience } from '../../src/broadcast/audience.js';
import { PayloadError } from '../../src/errors.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

// --- validation (pure) -------------------------------------------------------------------------

function rejects(audience: unknown, expected: string | RegExp): void {
  try {
    buildAudienceQuery(audience, 1);
  } catch (error) {
    assert.instance(error, PayloadError);
    const message = (error as Error).message;
    if (typeof expected === 'string') assert.is(message, expected);
    else assert.match(message, expected);
    return;
  }
  assert.unreachable(`expected ${JSON.stringify(audience)} to be rejected`);
}

test('validation: the audience must be an object of known filters', () => {
  rejects(null, 'audience must be an object, got null');
  rejects([1, 2], 'audience must be an object, got array');
  rejects('all', 'audience must be an object, got string');
  rejects({ tag: ['a'] }, /^audience has unknown filter "tag" \(known filters: chat_ids, exclude_chat_ids, tags_any, /);
  rejects({ tag: ['a'], lang: ['en'] }, /^audience has unknown filters "tag", "lang" /);
});

test('validation: lists', () => {
  rejects({ tags_any: [] }, 'audience.tags_any must be a non-empty array of strings, got an empty array');
  rejects({ tags_any: 'vip' }, 'audience.tags_any must be a non-empty array of strings, got string');
  rejects({ tags_all: ['a', 3] }, 'audience.tags_all must be a non-empty array of strings, got 3 at [1]');
  rejects({ languages: [''] }, 'audience.languages must be a non-empty array of strings, got string "" at [0]');
  rejects({ chat_ids: [] }, 'audience.chat_ids must be a non-empty array of chat ids, got an empty array');
  rejects({ chat_ids: 5 }, 'audience.chat_ids must be a non-empty array of chat ids, got number');
  rejects({ chat_ids: [1, 'x'] }, 'audience.chat_ids[1] must be an integer, got string "x"');
  rejects({ chat_ids: [0] }, 'audience.chat_ids[0] must be a non-zero integer within ±2^52, got 0');
  rejects({ exclude_chat_ids: {} }, 'audience.exclude_chat_ids must be an array of chat ids, got object');
  rejects({ chat_ids: new Array(1_000_001).fill(1) }, 'audience.chat_ids must have at most 1000000 entries, got 1000001');
});

test('validation: chat_ids combine only with exclude_chat_ids', () => {
  rejects({ chat_ids: [1], tags_any: ['a'], languages: ['en'] }, /^audience\.chat_ids cannot be combined with segment filters \(tags_any, languages\)/);
  assert.equal(parseAudience({ chat_ids: [1, 2, 1], exclude_chat_ids: [2] }), { chat_ids: [1, 2], exclude_chat_ids: [2] });
});

test('validation: numbers, dates and attributes', () => {
  for (const bad of [0, -1, '7', null, Number.POSITIVE_INFINITY]) {
    rejects({ active_within_days: bad }, /^audience\.active_within_days must be a positive number, got /);
  }
  rejects({ active_within_days: 100_000 }, 'audience.active_within_days must be at most 36500, got 100000');
  rejects({ subscribed_before: 'yesterday' }, 'audience.subscribed_before must be an ISO 8601 date or date-time with a zone (2024-05-01 or 2024-05-01T12:00:00Z), got string "yesterday"');
  rejects({ subscribed_after: '2024-13-45' }, /^audience\.subscribed_after must be an ISO 8601 date/);
  rejects({ subscribed_after: '2024-05-01T12:00:00' }, /^audience\.subscribed_after must be an ISO 8601 date or date-time with a zone/);
  rejects({ subscribed_after: 1714521600000 }, /^audience\.subscribed_after must be an ISO 8601 date .*, got 1714521600000$/);
  rejects({ subscribed_after: '2024-06-01', subscribed_before: '2024-05-01' }, 'audience.subscribed_after must be earlier than audience.subscribed_before, got 2024-06-01T00:00:00.000Z and 2024-05-01T00:00:00.000Z');
  rejects({ attributes: [] }, 'audience.attributes must be an object of attribute values, got array');
  rejects({ attributes: {} }, 'audience.attributes must name at least one attribute');
  rejects({ attributes: { plan: { tier: 1 } } }, 'audience.attributes.plan must be a string, number, boolean or null, got object');
  assert.equal(parseAudience({ subscribed_before: '2024-05-01T14:00:00+02:00', languages: ['EN', 'en', 'pt-BR'] }), {
    languages: ['en', 'pt-br'],
    subscribed_before: '2024-05-01T12:00:00.000Z',
  });
});

test('validation: a custom path prefixes every message', () => {
  try {
    buildAudienceQuery({ tags_any: [] }, 1, 'payload.audience');
    assert.unreachable();
  } catch (error) {
    assert.is((error as Error).message, 'payload.audience.tags_any must be a non-empty array of strings, got an empty array');
  }
});

test('the SQL carries no values and numbers its parameters from firstParam', () => {
  const q = buildAudienceQuery({ tags_any: ['vip'], languages: ['en'], attributes: { plan: 'pro' }, exclude_chat_ids: [9] }, 3);
  assert.is(
    q.from,
    '(SELECT s.chat_id, s.opted_out, s.unreachable_reason, s.time_zone FROM broadcast_subscribers s WHERE s.tags && $3::text[] AND lower(s.language_code) = ANY($4::text[]) AND s.attributes @> $5::jsonb AND s.chat_id <> ALL($6::bigint[])) r',
  );
  assert.equal(q.params, [['vip'], ['en'], '{"plan":"pro"}', [9]]);
  assert.equal(buildAudienceQuery({}, 1), { from: '(SELECT s.chat_id, s.opted_out, s.unreachable_reason, s.time_zone FROM broadcast_subscribers s) r', params: [] });
  const list = buildAudienceQuery({ chat_ids: [5, 6, 5, 7], exclude_chat_ids: [6] }, 2);
  assert.is(list.from, '(SELECT c.chat_id, COALESCE(s.opted_out, false) AS opted_out, s.unreachable_reason, s.time_zone FROM unnest($2::bigint[]) AS c(chat_id) LEFT JOIN broadcast_subscribers s USING (chat_id)) r');
  assert.equal(list.params, [[5, 7]]);
  assert.throws(() => buildAudienceQuery({}, 0), RangeError);
});

test('AUDIENCE_FILTERS documents every filter once', () => {
  const names = AUDIENCE_FILTERS.map((f) => f.name);
  assert.equal(names, [...new Set(names)]);
  assert.equal([...names].sort(), ['active_within_days', 'attributes', 'chat_ids', 'exclude_chat_ids', 'languages', 'subscribed_after', 'subscribed_before', 'tags_all', 'tags_any']);
  for (const f of AUDIENCE_FILTERS) assert.ok(f.doc.length > 10 && !f.doc.includes('\n'), f.name);
});

// --- against PostgreSQL ------------------------------------------------------------------------

const DAY_MS = 86_400_000;
const daysAgo = (n: number): Date => new Date(Date.now() - n * DAY_MS);

interface Subscriber {
  chat_id: number;
  tags?: string[];
  language_code?: string | null;
  attributes?: Record<string, unknown>;
  subscribed_at?: Date | string;
  last_active_at?: Date | null;
  opted_out?: boolean;
  unreachable_reason?: string | null;
}

const SUBSCRIBERS: Subscriber[] = [
  { chat_id: 1, tags: ['vip', 'news'], language_code: 'en', attributes: { plan: 'pro', seats: 5 }, subscribed_at: '2023-01-15T00:00:00Z', last_active_at: daysAgo(1) },
  { chat_id: 2, tags: ['news'], language_code: 'EN', attributes: { plan: 'free' }, subscribed_at: '2023-06-01T00:00:00Z', last_active_at: daysAgo(10) },
  { chat_id: 3, tags: ['vip'], language_code: 'de', attributes: { plan: 'pro', beta: true }, subscribed_at: '2024-02-01T00:00:00Z', last_active_at: daysAgo(40) },
  { chat_id: 4, tags: [], language_code: 'pt-br', attributes: {}, subscribed_at: '2024-06-01T00:00:00Z', last_active_at: null },
  { chat_id: 5, tags: ['vip', 'news', 'sale'], language_code: null, attributes: { plan: 'pro', seats: 5 }, subscribed_at: '2024-09-01T00:00:00Z', last_active_at: daysAgo(2), opted_out: true },
  { chat_id: 6, tags: ['sale'], language_code: 'en', attributes: { plan: 'free' }, subscribed_at: '2025-01-01T00:00:00Z', last_active_at: daysAgo(3), unreachable_reason: 'blocked' },
  { chat_id: -1001234567890, tags: ['news', 'channel'], language_code: null, attributes: { kind: 'channel' }, subscribed_at: '2022-01-01T00:00:00Z', last_active_at: null },
  { chat_id: 8, tags: ["'; DROP TABLE broadcast_subscribers; --"], language_code: 'en', attributes: { plan: "pro'--" }, subscribed_at: '2025-02-01T00:00:00Z', last_active_at: daysAgo(0.5), opted_out: true, unreachable_reason: 'kicked' },
];

async function seed(db: TestDatabase): Promise<void> {
  for (const s of SUBSCRIBERS) {
    await db.pool.query(
      `INSERT INTO broadcast_subscribers (chat_id, tags, language_code, attributes, subscribed_at, last_active_at, opted_out, unreachable_reason, unreachable_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CASE WHEN $8::text IS NULL THEN NULL ELSE now() END)`,
      [s.chat_id, s.tags ?? [], s.language_code ?? null, JSON.stringify(s.attributes ?? {}), s.subscribed_at ?? new Date(), s.last_active_at ?? null, s.opted_out ?? false, s.unreachable_reason ?? null],
    );
  }
}

async function withSubscribers(body: (db: TestDatabase) => Promise<void>): Promise<void> {
  const db = await createTestDatabase();
  try {
    await seed(db);
    await body(db);
  } finally {
    await db.drop();
  }
}

/** The chat ids an audience selects, sorted, with a caller parameter in $1 to prove the numbering. */
async function select(db: TestDatabase, audience: unknown): Promise<number[]> {
  const { from, params } = buildAudienceQuery(audience, 2);
  const { rows } = await db.pool.query<{ chat_id: number; marker: string }>(`SELECT r.chat_id, $1::text AS marker FROM ${from} ORDER BY r.chat_id`, ['caller', ...params]);
  for (const row of rows) assert.is(row.marker, 'caller');
  return rows.map((r) => r.chat_id);
}

const ALL = SUBSCRIBERS.map((s) => s.chat_id).sort((a, b) => a - b);

test('segments select exactly the matching subscribers', async () => {
  await withSubscribers(async (db) => {
    const cases: Array<[unknown, number[]]> = [
      [{}, ALL],
      [{ tags_any: ['vip'] }, [1, 3, 5]],
      [{ tags_any: ['sale', 'channel'] }, [-1001234567890, 5, 6]],
      [{ tags_any: ['nobody'] }, []],
      [{ tags_all: ['vip', 'news'] }, [1, 5]],
      [{ tags_all: ['news'] }, [-1001234567890, 1, 2, 5]],
      [{ languages: ['en'] }, [1, 2, 6, 8]],
      [{ languages: ['EN', 'PT-BR'] }, [1, 2, 4, 6, 8]],
      [{ languages: ['pt'] }, []],
      [{ active_within_days: 7 }, [1, 5, 6, 8]],
      [{ active_within_days: 30 }, [1, 2, 5, 6, 8]],
      [{ active_within_days: 0.75 }, [8]],
      [{ subscribed_before: '2024-01-01' }, [-1001234567890, 1, 2]],
      [{ subscribed_after: '2024-06-01T00:00:00Z' }, [5, 6, 8]],
      [{ subscribed_after: '2023-03-01', subscribed_before: '2024-07-01T00:00:00+00:00' }, [2, 3, 4]],
      [{ attributes: { plan: 'pro' } }, [1, 3, 5]],
      [{ attributes: { plan: 'pro', seats: 5 } }, [1, 5]],
      [{ attributes: { beta: true } }, [3]],
      [{ attributes: { seats: 5.0 } }, [1, 5]],
      [{ attributes: { plan: 'enterprise' } }, []],
      [{ exclude_chat_ids: [1, 2, 999] }, [-1001234567890, 3, 4, 5, 6, 8]],
      [{ exclude_chat_ids: [] }, ALL],
    ];
    for (const [audience, expected] of cases) {
      assert.equal(await select(db, audience), expected, JSON.stringify(audience));
    }
  });
});

test('segment filters are ANDed', async () => {
  await withSubscribers(async (db) => {
    assert.equal(await select(db, { tags_any: ['vip', 'sale'], languages: ['en'] }), [1, 6]);
    assert.equal(await select(db, { tags_any: ['news'], active_within_days: 7, exclude_chat_ids: [5] }), [1]);
    assert.equal(await select(db, { attributes: { plan: 'pro' }, subscribed_after: '2023-12-31' }), [3, 5]);
    assert.equal(await select(db, { tags_all: ['vip'], attributes: { plan: 'pro' }, languages: ['de'], active_within_days: 60, subscribed_before: '2024-03-01' }), [3]);
  });
});

test('segments carry opt-out and unreachability for the caller to skip', async () => {
  await withSubscribers(async (db) => {
    const { from, params } = buildAudienceQuery({ tags_any: ['vip', 'sale'] }, 1);
    const { rows } = await db.pool.query(`SELECT r.chat_id, r.opted_out, r.unreachable_reason FROM ${from} ORDER BY r.chat_id`, params);
    assert.equal(rows, [
      { chat_id: 1, opted_out: false, unreachable_reason: null },
      { chat_id: 3, opted_out: false, unreachable_reason: null },
      { chat_id: 5, opted_out: true, unreachable_reason: null },
      { chat_id: 6, opted_out: false, unreachable_reason: 'blocked' },
    ]);
  });
});

test('explicit chat ids: each once, subscribers or not, their flags applied', async () => {
  await withSubscribers(async (db) => {
    const { from, params } = buildAudienceQuery({ chat_ids: [1, 5, 6, 777, 1, -1001234567890, 777] }, 1);
    const { rows } = await db.pool.query(`SELECT r.chat_id, r.opted_out, r.unreachable_reason FROM ${from} ORDER BY r.chat_id`, params);
    assert.equal(rows, [
      { chat_id: -1001234567890, opted_out: false, unreachable_reason: null },
      { chat_id: 1, opted_out: false, unreachable_reason: null },
      { chat_id: 5, opted_out: true, unreachable_reason: null },
      { chat_id: 6, opted_out: false, unreachable_reason: 'blocked' },
      { chat_id: 777, opted_out: false, unreachable_reason: null },
    ]);
    assert.equal(await select(db, { chat_ids: [1, 5, 6, 777], exclude_chat_ids: [5, 777, 12345] }), [1, 6]);
    assert.equal(await select(db, { chat_ids: [1], exclude_chat_ids: [1] }), []);
  });
});

test('the audience works inside INSERT … SELECT into the ledger', async () => {
  await withSubscribers(async (db) => {
    const { rows: [b] } = await db.pool.query(`INSERT INTO broadcasts (message) VALUES ('{"text": "hi"}') RETURNING broadcast_id`);
    const { from, params } = buildAudienceQuery({ tags_any: ['news', 'sale'] }, 2);
    const inserted = await db.pool.query(
      `INSERT INTO broadcast_deliveries (broadcast_id, chat_id, status, outcome)
       SELECT $1, r.chat_id,
              CASE WHEN r.opted_out OR r.unreachable_reason IS NOT NULL THEN 'skipped' ELSE 'pending' END,
              CASE WHEN r.opted_out THEN 'opted_out' WHEN r.unreachable_reason IS NOT NULL THEN 'unreachable' END
         FROM ${from}
       ON CONFLICT DO NOTHING`,
      [b.broadcast_id, ...params],
    );
    assert.is(inserted.rowCount, 5);
    const { rows } = await db.pool.query(`SELECT chat_id, status, outcome FROM broadcast_deliveries ORDER BY chat_id`);
    assert.equal(rows, [
      { chat_id: -1001234567890, status: 'pending', outcome: null },
      { chat_id: 1, status: 'pending', outcome: null },
      { chat_id: 2, status: 'pending', outcome: null },
      { chat_id: 5, status: 'skipped', outcome: 'opted_out' },
      { chat_id: 6, status: 'skipped', outcome: 'unreachable' },
    ]);
  });
});

test('countAudience splits total into reachable, opted out and unreachable', async () => {
  await withSubscribers(async (db) => {
    // All: 8 total; opted out 5 and 8 (8 is also unreachable); unreachable 6 only.
    assert.equal(await countAudience(db.pool, {}), { total: 8, reachable: 5, opted_out: 2, unreachable: 1 });
    assert.equal(await countAudience(db.pool, { tags_any: ['vip'] }), { total: 3, reachable: 2, opted_out: 1, unreachable: 0 });
    assert.equal(await countAudience(db.pool, { languages: ['en'] }), { total: 4, reachable: 2, opted_out: 1, unreachable: 1 });
    assert.equal(await countAudience(db.pool, { chat_ids: [1, 2, 6, 404, 404] }), { total: 4, reachable: 3, opted_out: 0, unreachable: 1 });
    assert.equal(await countAudience(db.pool, { tags_any: ['nobody'] }), { total: 0, reachable: 0, opted_out: 0, unreachable: 0 });
    const client = await db.pool.connect();
    try {
      assert.equal(await countAudience(client, { attributes: { plan: 'pro' } }), { total: 3, reachable: 2, opted_out: 1, unreachable: 0 });
    } finally {
      client.release();
    }
    try {
      await countAudience(db.pool, { segment: 'vip' });
      assert.unreachable();
    } catch (error) {
      assert.instance(error, PayloadError);
    }
  });
});

test('hostile values are data, not SQL', async () => {
  await withSubscribers(async (db) => {
    const evil = "'; DROP TABLE broadcast_subscribers; --";
    assert.equal(await select(db, { tags_any: [evil] }), [8]);
    assert.equal(await select(db, { tags_all: [evil, "x' OR '1'='1"] }), []);
    assert.equal(await select(db, { languages: ["en' OR 1=1 --"] }), []);
    assert.equal(await select(db, { attributes: { plan: "pro'--" } }), [8]);
    assert.equal(await select(db, { attributes: { "plan' OR '1'='1": 'x' } }), []);
    const { from } = buildAudienceQuery({ tags_any: [evil], attributes: { [evil]: evil } }, 1);
    assert.not.ok(from.includes('DROP'), from);
    const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM broadcast_subscribers`);
    assert.is(rows[0].n, SUBSCRIBERS.length);
  });
});

test('a large explicit list is one parameter', async () => {
  await withSubscribers(async (db) => {
    const ids = Array.from({ length: 50_000 }, (_, i) => 1_000_000 + i);
    const q = buildAudienceQuery({ chat_ids: [...ids, 1, 5] }, 1);
    assert.is(q.params.length, 1);
    assert.equal(await countAudience(db.pool, { chat_ids: [...ids, 1, 5] }), { total: 50_002, reachable: 50_001, opted_out: 1, unreachable: 0 });
  });
});

test.run();
