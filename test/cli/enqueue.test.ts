import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { json, bqctlInProcess, runBqctl } from './run-bqctl.js';

async function withDb(body: (db: TestDatabase, env: Record<string, string>, dir: string) => Promise<void>): Promise<void> {
  const db = await createTestDatabase();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bqctl-enqueue-'));
  try {
    await body(db, { DATABASE_URL: db.url }, dir);
  } finally {
    await db.drop();
    await rm(dir, { recursive: true, force: true });
  }
}

const jobCount = async (db: TestDatabase) => (await db.pool.query('SELECT count(*)::int AS n FROM broadcast_queue_jobs')).rows[0].n;

test('enqueue send inserts a validated send job and prints its id', async () => {
  await withDb(async (db, env, dir) => {
    const plain = await runBqctl(['enqueue', 'send', '--chat', '123456', '--text', '<b>Shipped</b>', '--parse-mode', 'html', '--priority', '5'], env);
    assert.is(plain.code, 0, plain.stderr);
    const id = Number(plain.stdout.trim());
    const row = (await db.pool.query('SELECT * FROM broadcast_queue_jobs WHERE job_id = $1', [id])).rows[0];
    assert.equal([row.job_type, row.queue, row.priority, row.max_attempts, row.status], ['send', 'broadcasts', 5, 3, 'pending']);
    assert.equal(row.payload, { chat_id: 123456, message: { text: '<b>Shipped</b>', parse_mode: 'html' } });

    const file = path.join(dir, 'photo.json');
    await writeFile(file, JSON.stringify({ photo: 'https://example.com/a.jpg', caption: 'New' }));
    const fromFile = await runBqctl(['enqueue', 'send', '--chat=-1001234567890', '--json-file', file, '--queue', 'transactional', '--run-at', '10m', '--json'], { ...env, BQ_MAX_ATTEMPTS: '7' });
    assert.is(fromFile.code, 0, fromFile.stderr);
    const out = json(fromFile);
    assert.equal(Object.keys(out).sort(), ['existing', 'job_id', 'status']);
    const second = (await db.pool.query('SELECT queue, max_attempts, payload, run_at > now() + interval \'5 minutes\' AS later FROM broadcast_queue_jobs WHERE job_id = $1', [out.job_id])).rows[0];
    assert.equal(second, { queue: 'transactional', max_attempts: 7, payload: { chat_id: -1001234567890, message: { photo: 'https://example.com/a.jpg', caption: 'New' } }, later: true });
  });
});

test('enqueue validates before inserting: bad messages, chats, flags and JSON files exit 2 and insert nothing', async () => {
  await withDb(async (db, env, dir) => {
    const cases: [string[], RegExp][] = [
      [['enqueue', 'send', '--chat', 'abc', '--text', 'x'], /--chat entry 1 must be an integer chat id, got "abc"/],
      [['enqueue', 'send', '--chat', '1', '--text', 'x', '--parse-mode', 'bbcode'], /parse_mode must be one of HTML, MarkdownV2, Markdown/],
      [['enqueue', 'send', '--chat', '1'], /give the message with --text or --json-file/],
      [['enqueue', 'send', '--text', 'x'], /required option '--chat <chat_id>' not specified/],
      [['enqueue', 'send', '--chat', '1', '--text', 'x', '--max-attempts', 'many'], /--max-attempts must be a whole number from 1 to 100/],
      [['enqueue', 'send', '--chat', '1', '--text', 'x', '--run-at', 'soon'], /--run-at must be an ISO date-time/],
      [['enqueue', 'broadcast', '--text', 'x'], /say who receives it/],
      [['enqueue', 'broadcast', '--text', 'x', '--segment', '{"tags_any": "vip"}'], /--segment.tags_any must be a non-empty array of strings/],
      [['enqueue', 'broadcast', '--text', 'x', '--segment', '{"tag": ["vip"]}'], /unknown filter "tag"/],
      [['enqueue', 'broadcast', '--text', 'x', '--segment', '{oops'], /--segment is not valid JSON/],
      [['enqueue', 'broadcast', '--text', 'x', '--chats', '1,2', '--segment', '{}'], /give one of --segment, --chats or --chats-file/],
      [['enqueue', 'broadcast', '--broadcast-id', 'x1'], /broadcast id must be a positive integer, got "x1"/],
    ];
    for (const [args, message] of cases) {
      const result = await bqctlInProcess(args, env);
      assert.is(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message, args.join(' '));
      assert.not.match(result.stderr, /\n\s+at /, 'no stack trace');
    }
    const broken = path.join(dir, 'broken.json');
    await writeFile(broken, '{"text": "hi",}');
    const badJson = await bqctlInProcess(['enqueue', 'send', '--chat', '1', '--json-file', broken], env);
    assert.is(badJson.code, 2);
    assert.match(badJson.stderr, new RegExp(`${broken.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} is not valid JSON: .+`));
    const wrong = path.join(dir, 'wrong.json');
    await writeFile(wrong, '{"text": "hi", "disable_web_page_preview": true}');
    const badField = await bqctlInProcess(['enqueue', 'send', '--chat', '1', '--json-file', wrong], env);
    assert.is(badField.code, 2);
    assert.match(badField.stderr, /wrong\.json has unknown field "disable_web_page_preview"; the Bot API replaced it with link_preview_options/);
    const missing = await bqctlInProcess(['enqueue', 'send', '--chat', '1', '--json-file', path.join(dir, 'nope.json')], env);
    assert.is(missing.code, 2);
    assert.match(missing.stderr, /cannot read .*nope\.json: no such file/);
    assert.is(await jobCount(db), 0);
  });
});

test('enqueue broadcast: inline to chats or a segment, or a stored broadcast by id (keyed, once)', async () => {
  await withDb(async (db, env, dir) => {
    const chats = json(await runBqctl(['enqueue', 'broadcast', '--text', 'Hello', '--chats', '1, 2,3', '--json'], env));
    assert.equal((await db.pool.query('SELECT job_type, payload FROM broadcast_queue_jobs WHERE job_id = $1', [chats.job_id])).rows[0], { job_type: 'broadcast', payload: { message: { text: 'Hello' }, chat_ids: [1, 2, 3] } });

    const chatFile = path.join(dir, 'chats.txt');
    await writeFile(chatFile, '10\n11\n\n12\n');
    const fromFile = json(await runBqctl(['enqueue', 'broadcast', '--text', 'Hi', '--chats-file', chatFile, '--title', 'ops', '--json'], env));
    assert.equal((await db.pool.query('SELECT payload FROM broadcast_queue_jobs WHERE job_id = $1', [fromFile.job_id])).rows[0].payload, { message: { text: 'Hi' }, chat_ids: [10, 11, 12], title: 'ops' });

    const segment = await runBqctl(['enqueue', 'broadcast', '--text', 'VIP', '--segment', '{"tags_any":["vip"]}'], env);
    assert.is(segment.code, 0, segment.stderr);
    assert.equal((await db.pool.query('SELECT payload FROM broadcast_queue_jobs WHERE job_id = $1', [Number(segment.stdout)])).rows[0].payload, { message: { text: 'VIP' }, audience: { tags_any: ['vip'] } });

    const { rows } = await db.pool.query(`INSERT INTO broadcasts (title, message) VALUES ('stored', '{"text": "x"}') RETURNING broadcast_id`);
    const id = rows[0].broadcast_id;
    const first = json(await runBqctl(['enqueue', 'broadcast', '--broadcast-id', String(id), '--json'], env));
    assert.equal([first.existing, first.broadcast_id], [false, id]);
    const job = (await db.pool.query('SELECT job_key, payload FROM broadcast_queue_jobs WHERE job_id = $1', [first.job_id])).rows[0];
    assert.equal(job, { job_key: `broadcast:${id}`, payload: { broadcast_id: id } });
    assert.is((await db.pool.query('SELECT status FROM broadcasts WHERE broadcast_id = $1', [id])).rows[0].status, 'queued');
    const again = await runBqctl(['enqueue', 'broadcast', '--broadcast-id', String(id)], env);
    assert.is(again.code, 0);
    assert.is(Number(again.stdout), first.job_id);
    assert.match(again.stderr, /already exists/);

    const missing = await runBqctl(['enqueue', 'broadcast', '--broadcast-id', '999999'], env);
    assert.is(missing.code, 1);
    assert.match(missing.stderr, /broadcast 999999 does not exist/);
  });
});

test.run();
