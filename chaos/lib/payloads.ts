// The bad input of scenario 4: more than a thousand job rows a careless or hostile INSERT could
// write, each with the outcomes that would be acceptable. Generated from a seed, so a failing
// case can be found again by its label.
import { pick } from './util.js';

/**
 * refused: the INSERT fails (a constraint or a type error, with PostgreSQL's message).
 * failed: the job fails with a clear last_error.   completed: it runs (odd but valid input).
 * unrunnable: it stays pending and is listed as a job no daemon runs.
 * inert: accepted as written and never due or already final (status 'completed', run_at 'infinity').
 */
export type Outcome = 'refused' | 'failed' | 'completed' | 'unrunnable' | 'inert';

export interface Case {
  label: string;
  category: 'send' | 'broadcast' | 'raw payload' | 'columns' | 'unicode';
  sql: string;
  params: unknown[];
  expect: Outcome[];
  /** A valid message to a fresh chat: what the stand-in must receive, verbatim. */
  delivers?: { chatId: number; text: string };
  /** A bad payload: it must fail on its first attempt, not burn retries. */
  payloadError?: boolean;
  /** Inserted after every other case has finished, because it may wedge a daemon. */
  late?: boolean;
}

const INSERT = `INSERT INTO broadcast_queue_jobs (job_type, payload) VALUES ($1, $2::text::jsonb) RETURNING job_id`;

/** A value as JSON text, or raw JSON text that JSON.stringify cannot produce. */
type Json = { json: unknown } | { raw: string };
const j = (json: unknown): Json => ({ json });
const raw = (text: string): Json => ({ raw: text });
const text = (v: Json) => ('raw' in v ? v.raw : JSON.stringify(v.json));

const deep = (depth: number, leaf = '1') => '['.repeat(depth) + leaf + ']'.repeat(depth);

interface ChatVariant { label: string; value: Json | null; ok: boolean }
interface MessageVariant { label: string; value: Json | null; ok: 'ok' | 'bad' | 'refused' | 'telegram' | 'maybe'; text?: string }

const BAD_CHATS: ChatVariant[] = [
  ['string', j('abc')], ['numeric string', j('123')], ['empty string', j('')], ['null', j(null)], ['true', j(true)], ['false', j(false)],
  ['1.5', j(1.5)], ['-0.5', j(-0.5)], ['zero', j(0)], ['2^52', j(2 ** 52)], ['-2^52', j(-(2 ** 52))], ['1e20', j(1e20)], ['-1e20', j(-1e20)],
  ['1e308', j(1e308)], ['array', j([])], ['array of id', j([1])], ['object', j({})], ['object with id', j({ id: 1 })],
  ['@channel string', j('@mychannel')], ['sql string', j("'; DROP TABLE broadcast_queue_jobs; --")], ['sql or', j('1 OR 1=1')],
  ['2^53+1 digits', raw('9007199254740993')], ['30 digits', raw('123456789012345678901234567890')], ['int64 min', raw('-9223372036854775808')],
  ['1e-7', raw('1e-7')], ['1.0000000000000002', raw('1.0000000000000002')], ['missing', null],
].map(([label, value]) => ({ label: `chat_id ${label}`, value: value as Json | null, ok: false }));

function messageVariants(): MessageVariant[] {
  const ok = (label: string, t: string, extra: Record<string, unknown> = {}): MessageVariant => ({ label, value: j({ text: t, ...extra }), ok: 'ok', text: t });
  return [
    ok('plain text', 'hello'),
    ok('RTL marks', '\u200fשלום עולם\u200f'),
    ok('RLO override', 'invoice\u202etxt.exe'),
    ok('LRM/RLM and isolates', 'abc\u200e\u2066مرحبا\u2069\u200f'),
    ok('ZWJ emoji family', '👩‍👩‍👧‍👦 family'),
    ok('combining marks', 'Z\u0351\u0364\u0300a\u0301\u0301\u0301l\u0308g\u0315o\u0360'),
    ok('byte order mark', '\ufeffBOM first'),
    ok('astral letters', '𝕳𝖊𝖑𝖑𝖔 𝔀𝓸𝓻𝓵𝓭'),
    ok('zero-width spaces', 'a\u200bb\u200cc\u200dd\u2060e'),
    ok('valid surrogate pair escaped', '😀 grin'),
    ok('noncharacters', 'x\ufffey\uffff'),
    ok('replacement char', '\ufffd\ufffd'),
    ok('NEL and LS/PS', 'line\u0085next\u2028ls\u2029ps'),
    ok('control chars', 'bell\u0007tab\tvt\u000b'),
    ok('SQL drop', "'; DROP TABLE broadcast_queue_jobs; --"),
    ok('Bobby Tables', "Robert'); DROP TABLE students;--"),
    ok('SQL or', "1' OR '1'='1"),
    ok('SQL comment and semicolon', '/* */ SELECT pg_sleep(10); --'),
    ok('placeholder', '$1 $2::jsonb'),
    ok('printf', '%s %n %x %%'),
    ok('backslashes', 'C:\\path\\to\\file \\x00 \\u0000'),
    ok('quotes', `"double" 'single' \`back\``),
    ok('exactly 4096 chars', 'a'.repeat(4096)),
    ok('HTML valid', 'Hello <b>bold</b> <i>it</i>', { parse_mode: 'HTML' }),
    ok('parse_mode lowercase', '<b>x</b>', { parse_mode: 'html' }),
    { label: '4096 astral chars (8192 UTF-16 units)', value: j({ text: '😀'.repeat(4096) }), ok: 'maybe', text: '😀'.repeat(4096) },
    { label: 'text 4097 chars', value: j({ text: 'a'.repeat(4097) }), ok: 'bad' },
    { label: 'text 100k chars', value: j({ text: 'a'.repeat(100_000) }), ok: 'bad' },
    { label: 'text 1 MB', value: j({ text: 'x'.repeat(1_000_000) }), ok: 'bad' },
    { label: 'empty text', value: j({ text: '' }), ok: 'bad' },
    { label: 'whitespace text', value: j({ text: ' \n\t ' }), ok: 'bad' },
    { label: 'zero-width only text', value: j({ text: '\u200b\u200b' }), ok: 'maybe', text: '\u200b\u200b' },
    { label: 'text number', value: j({ text: 42 }), ok: 'bad' },
    { label: 'text null', value: j({ text: null }), ok: 'bad' },
    { label: 'text object', value: j({ text: { a: 1 } }), ok: 'bad' },
    { label: 'text array', value: j({ text: ['a'] }), ok: 'bad' },
    { label: 'message string', value: j('hello'), ok: 'bad' },
    { label: 'message array', value: j(['hello']), ok: 'bad' },
    { label: 'message null', value: j(null), ok: 'bad' },
    { label: 'message number', value: j(42), ok: 'bad' },
    { label: 'message missing', value: null, ok: 'bad' },
    { label: 'message empty object', value: j({}), ok: 'bad' },
    { label: 'unknown field', value: j({ text: 'x', bogus: 1 }), ok: 'bad' },
    { label: 'chat_id inside message', value: j({ text: 'x', chat_id: 5 }), ok: 'bad' },
    { label: 'parse_mode unknown', value: j({ text: 'x', parse_mode: 'HTMLX' }), ok: 'bad' },
    { label: 'parse_mode number', value: j({ text: 'x', parse_mode: 1 }), ok: 'bad' },
    { label: 'entities string', value: j({ text: 'x', entities: 'bold' }), ok: 'bad' },
    { label: 'entity negative offset', value: j({ text: 'x', entities: [{ type: 'bold', offset: -1, length: 1 }] }), ok: 'bad' },
    { label: 'reply_markup empty', value: j({ text: 'x', reply_markup: {} }), ok: 'bad' },
    { label: 'reply_markup string keyboard', value: j({ text: 'x', reply_markup: { inline_keyboard: 'x' } }), ok: 'bad' },
    { label: 'reply_markup nested 1000 deep', value: raw(`{"text":"x","reply_markup":{"inline_keyboard":${deep(1000)}}}`), ok: 'bad' },
    { label: 'callback_data nested 5000 deep', value: raw(`{"text":"x","reply_markup":{"inline_keyboard":[[{"text":"b","callback_data":${deep(5000)}}]]}}`), ok: 'maybe', text: 'x' },
    { label: 'two kinds (text and photo)', value: j({ text: 'x', photo: 'abc' }), ok: 'bad' },
    { label: 'photo number', value: j({ photo: 123 }), ok: 'bad' },
    { label: 'photo bad id', value: j({ photo: 'not a url or id!' }), ok: 'bad' },
    { label: 'photo javascript url', value: j({ photo: 'javascript:alert(1)' }), ok: 'bad' },
    { label: 'caption 2000 chars', value: j({ photo: 'AgADBAAD', caption: 'c'.repeat(2000) }), ok: 'bad' },
    { label: 'copy empty', value: j({ copy: {} }), ok: 'bad' },
    { label: 'copy negative message id', value: j({ copy: { from_chat_id: 1, message_id: -5 } }), ok: 'bad' },
    { label: 'disable_notification string', value: j({ text: 'x', disable_notification: 'yes' }), ok: 'bad' },
    { label: 'link preview ftp url', value: j({ text: 'x', link_preview_options: { url: 'ftp://x' } }), ok: 'bad' },
    { label: '__proto__ field', value: raw('{"text":"x","__proto__":{"polluted":true}}'), ok: 'bad' },
    { label: 'constructor field', value: j({ text: 'x', constructor: { prototype: 1 } }), ok: 'bad' },
    { label: 'HTML unclosed tag', value: j({ text: '<b>unclosed', parse_mode: 'HTML' }), ok: 'telegram' },
    { label: 'HTML script tag', value: j({ text: '<script>alert(1)</script>', parse_mode: 'HTML' }), ok: 'telegram' },
    { label: 'lone high surrogate escaped', value: raw('{"text":"a\\ud800b"}'), ok: 'refused' },
    { label: 'lone low surrogate escaped', value: raw('{"text":"a\\udc00b"}'), ok: 'refused' },
    { label: 'reversed surrogates escaped', value: raw('{"text":"\\udc00\\ud800"}'), ok: 'refused' },
    { label: 'NUL escaped', value: raw('{"text":"nul\\u0000byte"}'), ok: 'refused' },
    { label: 'invalid escape', value: raw('{"text":"bad \\q escape"}'), ok: 'refused' },
    // JSON.stringify escapes a lone surrogate of a JS string as \ud800, which PostgreSQL refuses.
    { label: 'lone surrogate in a JS string', value: j({ text: `a${String.fromCharCode(0xd800)}b` }), ok: 'refused' },
  ];
}

/** Generates the cases; `nextChat` hands out fresh chat ids so valid messages never share a chat. */
export function generateCases(random: () => number, nextChat: () => number): Case[] {
  const cases: Case[] = [];
  const messages = messageVariants();
  const okMessages = messages.filter((m) => m.ok === 'ok');
  const send = (label: string, chat: Json | null, message: MessageVariant, extra = '') => {
    const chatId = chat === null ? null : 'json' in chat ? chat.json : null;
    const payload = `{${[chat !== null ? `"chat_id":${text(chat)}` : null, message.value !== null ? `"message":${text(message.value)}` : null].filter(Boolean).join(',')}${extra}}`;
    const chatOk = typeof chatId === 'number' && Number.isInteger(chatId) && chatId !== 0 && Math.abs(chatId) < 2 ** 52 && chat !== null && 'json' in chat;
    let expect: Outcome[];
    if (message.ok === 'refused') expect = ['refused'];
    else if (!chatOk || message.ok === 'bad') expect = ['failed'];
    else if (message.ok === 'telegram') expect = ['failed'];
    else if (message.ok === 'maybe') expect = ['completed', 'failed'];
    else expect = ['completed'];
    cases.push({
      label, category: 'send', sql: INSERT, params: ['send', payload], expect,
      payloadError: expect.length === 1 && expect[0] === 'failed',
      ...(chatOk && message.text !== undefined && expect.includes('completed') ? { delivers: { chatId: chatId as number, text: message.text } } : {}),
    });
  };
  // Every bad chat id with a good message, every message with a fresh good chat id.
  for (const c of BAD_CHATS) send(`send: ${c.label}`, c.value, okMessages[0]!);
  for (const m of messages) send(`send: ${m.label}`, j(nextChat()), m);
  send('send: negative (group) chat id', j(-nextChat()), okMessages[0]!);
  send('send: extra top-level field 1 MB', j(nextChat()), okMessages[0]!, `,"junk":"${'j'.repeat(1_000_000)}"`);
  send('send: extra field deep 10000', j(nextChat()), okMessages[0]!, `,"deep":${deep(10_000)}`);
  // Random combinations, to cover bad pairs too.
  for (let i = 0; i < 600; i++) {
    const useBadChat = random() < 0.35;
    const chat = useBadChat ? pick(random, BAD_CHATS) : { label: 'fresh chat', value: j(nextChat()), ok: true };
    const m = pick(random, messages);
    send(`send #${i}: ${chat.label} + ${m.label}`, chat.value, m);
  }

  // Broadcasts.
  const broadcast = (label: string, payload: string, expect: Outcome[], delivers?: { chatId: number; text: string }, payloadError = expect.length === 1 && expect[0] === 'failed') =>
    cases.push({ label: `broadcast: ${label}`, category: 'broadcast', sql: INSERT, params: ['broadcast', payload], expect, payloadError, ...(delivers ? { delivers } : {}) });
  for (const [label, v] of [['-1', '-1'], ['0', '0'], ['1.5', '1.5'], ['string', '"1"'], ['abc', '"abc"'], ['null', 'null'], ['true', 'true'], ['1e20', '1e20'], ['2^63', '9223372036854775808'], ['nonexistent', '987654321'], ['array', '[1]'], ['object', '{"id":1}'], ['sql', `"1; DELETE FROM broadcasts"`]] as const) {
    broadcast(`broadcast_id ${label}`, `{"broadcast_id":${v}}`, ['failed']);
  }
  for (const m of messages) {
    const chat = nextChat();
    const expect: Outcome[] = m.ok === 'refused' ? ['refused'] : m.ok === 'bad' ? ['failed'] : m.ok === 'telegram' ? ['failed', 'completed'] : m.ok === 'maybe' ? ['completed', 'failed'] : ['completed'];
    broadcast(`message ${m.label}`, `{${m.value ? `"message":${text(m.value)},` : ''}"chat_ids":[${chat}]}`, expect, m.ok === 'ok' && m.text !== undefined ? { chatId: chat, text: m.text } : undefined, m.ok === 'bad');
  }
  const msg = '"message":{"text":"chaos bad input"}';
  const chatIdCases: [string, string, Outcome[]][] = [
    ['empty', '[]', ['failed', 'completed']], ['string', '"1,2,3"', ['failed']], ['number', '5', ['failed']], ['null', 'null', ['failed']],
    ['object', '{}', ['failed']], ['mixed', '[1,"x"]', ['failed']], ['float', '[1.5]', ['failed']], ['zero', '[0]', ['failed']],
    ['2^53', '[9007199254740992]', ['failed']], ['nested', '[[1]]', ['failed']], ['null entry', '[null]', ['failed']], ['negative huge', '[-1e300]', ['failed']],
    ['deep nested', deep(3000), ['failed']], ['1,000,001 ids', `[${Array.from({ length: 1_000_001 }, (_v, i) => i + 50_000_000).join(',')}]`, ['failed']],
  ];
  for (const [label, ids, expect] of chatIdCases) broadcast(`chat_ids ${label}`, `{${msg},"chat_ids":${ids}}`, expect);
  const dup = nextChat();
  broadcast('chat_ids with a duplicate', `{${msg},"chat_ids":[${dup},${dup},${dup}]}`, ['completed', 'failed'], { chatId: dup, text: 'chaos bad input' }, false);
  const audienceCases: [string, string, Outcome[]][] = [
    ['tags_any string', '{"tags_any":"vip"}', ['failed']], ['unknown filter', '{"bogus":1}', ['failed']], ['negative days', '{"active_within_days":-1}', ['failed']],
    ['bad date', '{"subscribed_before":"yesterday"}', ['failed']], ['nested attributes', '{"attributes":{"a":{"b":1}}}', ['failed', 'completed']],
    ['languages numbers', '{"languages":[1]}', ['failed']], ['string', '"all"', ['failed']], ['array', '[]', ['failed']],
    ['sql in tag', `{"tags_any":["x'); DROP TABLE broadcast_subscribers; --"]}`, ['completed']], ['everyone (no subscribers)', '{}', ['completed']],
    ['nobody', '{"tags_any":["nobody-has-this"]}', ['completed']], ['exclude only', '{"exclude_chat_ids":[1]}', ['completed', 'failed']],
  ];
  for (const [label, audience, expect] of audienceCases) broadcast(`audience ${label}`, `{${msg},"audience":${audience}}`, expect);
  const variantCases: [string, string][] = [
    ['empty', '[]'], ['weight 0', '[{"name":"a","weight":0,"message":{"text":"x"}}]'], ['duplicate names', '[{"name":"a","weight":1,"message":{"text":"x"}},{"name":"a","weight":1,"message":{"text":"y"}}]'],
    ['name with space', '[{"name":"a b","weight":1,"message":{"text":"x"}}]'], ['weight string', '[{"name":"a","weight":"1","message":{"text":"x"}}]'],
    ['bad message', '[{"name":"a","weight":1,"message":{"text":""}}]'], ['not an array', '{"a":1}'], ['array of strings', '["a","b"]'],
  ];
  for (const [label, variants] of variantCases) broadcast(`variants ${label}`, `{"variants":${variants},"chat_ids":[${nextChat()}]}`, ['failed']);
  for (const [label, extra] of [['frequency_cap -1', '"frequency_cap":-1'], ['frequency_cap string', '"frequency_cap":"x"'], ['frequency_cap 1.5', '"frequency_cap":1.5'], ['allow_paid_broadcast string', '"allow_paid_broadcast":"yes"']] as const) {
    broadcast(label, `{${msg},"chat_ids":[${nextChat()}],${extra}}`, ['failed']);
  }
  broadcast('neither message nor variants', `{"chat_ids":[${nextChat()}]}`, ['failed']);
  broadcast('message but no audience', `{${msg}}`, ['failed']);
  broadcast('empty payload', '{}', ['failed']);
  const titled = nextChat();
  broadcast('title 10,000 chars', `{${msg},"title":"${'t'.repeat(10_000)}","chat_ids":[${titled}]}`, ['completed', 'failed'], { chatId: titled, text: 'chaos bad input' }, false);
  for (let i = 0; i < 120; i++) {
    const m = pick(random, messages);
    const [label, ids, expect] = random() < 0.5 ? pick(random, chatIdCases) : [`fresh chat`, `[${nextChat()}]`, ['completed'] as Outcome[]];
    const combined: Outcome[] = m.ok === 'refused' ? ['refused'] : m.ok === 'bad' || !expect.includes('completed') ? ['failed'] : m.ok === 'ok' ? expect : ['failed', 'completed'];
    broadcast(`#${i}: chat_ids ${label} + message ${m.label}`, `{${m.value ? `"message":${text(m.value)},` : ''}"chat_ids":${ids}}`, combined);
  }

  // Payloads that are not objects, or not JSON at all.
  const rawPayload = (label: string, sqlValue: string | null, expect: Outcome[] = ['refused']) =>
    cases.push({ label: `raw payload: ${label}`, category: 'raw payload', sql: sqlValue === null ? `INSERT INTO broadcast_queue_jobs (job_type, payload) VALUES ('send', NULL) RETURNING job_id` : INSERT, params: sqlValue === null ? [] : ['send', sqlValue], expect });
  for (const [label, v] of [['array', '[]'], ['string', '"hello"'], ['number', '42'], ['true', 'true'], ['json null', 'null'], ['not json', '{bad'], ['empty', ''], ['trailing comma', '{"a":1,}'],
    ['single quotes', "{'chat_id':1}"], ['lone surrogate key', '{"\\ud800":1}'], ['NUL in key', '{"a\\u0000":1}'], ['NaN', '{"chat_id":NaN}'], ['Infinity', '{"chat_id":Infinity}'],
    ['comment', '{"chat_id":1 /* c */}'], ['two objects', '{}{}'], ['deep 100000', deep(100_000)], ['deep object 20000', '{"a":'.repeat(20_000) + '1' + '}'.repeat(20_000)],
    ['array of messages', '[{"chat_id":1,"message":{"text":"x"}}]']] as const) rawPayload(label, v);
  rawPayload('SQL NULL', null);
  for (const [label, v, expect] of [['duplicate keys (last wins)', `{"chat_id":"x","chat_id":${nextChat()},"message":{"text":"dup keys"}}`, ['completed']], ['huge number', '{"chat_id":1e400,"message":{"text":"x"}}', ['failed', 'refused']],
    ['deep object 1000 as payload', '{"a":'.repeat(1000) + '1' + '}'.repeat(1000), ['failed']]] as [string, string, Outcome[]][]) rawPayload(label, v, expect);

  // Other columns.
  const col = (label: string, sql: string, params: unknown[], expect: Outcome[]) => cases.push({ label: `columns: ${label}`, category: 'columns', sql, params, expect });
  const good = () => JSON.stringify({ chat_id: nextChat(), message: { text: 'columns' } });
  const colInsert = (cols: string, values: string) => `INSERT INTO broadcast_queue_jobs (job_type, payload, ${cols}) VALUES ('send', $1::jsonb, ${values}) RETURNING job_id`;
  for (const [label, q] of [['empty', ''], ['blank', '   '], ['129 chars', 'q'.repeat(129)], ['newline only', '\n']] as const) col(`queue ${label}`, colInsert('queue', '$2'), [good(), q], ['refused']);
  for (const q of ['no-such-queue', "q'; DROP TABLE broadcast_queue_jobs;--", '🤖', 'BROADCASTS', ' broadcasts']) col(`queue ${JSON.stringify(q)}`, colInsert('queue', '$2'), [good(), q], ['unrunnable']);
  for (const [label, t] of [['empty', ''], ['blank', ' \t'], ['200 chars', 't'.repeat(200)]] as const) col(`job_type ${label}`, `INSERT INTO broadcast_queue_jobs (job_type, payload) VALUES ($2, $1::jsonb) RETURNING job_id`, [good(), t], ['refused']);
  for (const t of ['frobnicate', 'Send', 'send ', 'DROP TABLE broadcast_queue_jobs', '🤖', 'webhook', 'Broadcast']) col(`job_type ${JSON.stringify(t)}`, `INSERT INTO broadcast_queue_jobs (job_type, payload) VALUES ($2, $1::jsonb) RETURNING job_id`, [good(), t], ['unrunnable']);
  for (const [label, v, expect] of [['abc', 'abc', ['refused']], ['2^31', '2147483648', ['refused']], ['1000001', '1000001', ['refused']], ['-1000001', '-1000001', ['refused']], ['1.5', '1.5', ['refused', 'completed']], ['-1000000', '-1000000', ['completed']]] as [string, string, Outcome[]][]) {
    col(`priority ${label}`, colInsert('priority', '$2'), [good(), v], expect);
  }
  for (const v of ['0', '101', '-1', 'many', '']) col(`max_attempts ${JSON.stringify(v)}`, colInsert('max_attempts', '$2'), [good(), v], ['refused']);
  for (const [label, v, expect] of [['bogus', 'bogus', ['refused']], ['processing without owner', 'processing', ['refused']], ['completed', 'completed', ['inert']], ['failed', 'failed', ['inert']], ['cancelled', 'cancelled', ['inert']], ['PENDING', 'PENDING', ['refused']]] as [string, string, Outcome[]][]) {
    col(`status ${label}`, colInsert('status', '$2'), [good(), v], expect);
  }
  col('processing, owned by a daemon that never existed', colInsert('status, locked_by', `'processing', 'ghost-daemon'`), [good()], ['completed']);
  col('attempts -1', colInsert('attempts', '-1'), [good()], ['refused']);
  col('attempts already past max_attempts', colInsert('attempts, max_attempts', '7, 3'), [good()], ['completed', 'failed']);
  for (const [label, v, expect] of [['not a date', 'not a date', ['refused']], ['infinity', 'infinity', ['inert']], ['-infinity', '-infinity', ['completed']], ['1900', '1900-01-01', ['completed']], ['year 9999', '9999-12-31', ['inert']], ['epoch text', '0', ['refused']]] as [string, string, Outcome[]][]) {
    col(`run_at ${label}`, colInsert('run_at', '$2'), [good(), v], expect);
  }
  col('job_key empty', colInsert('job_key', "''"), [good()], ['refused']);
  col('job_key 600 chars', colInsert('job_key', '$2'), [good(), 'k'.repeat(600)], ['refused']);
  col('job_key first', colInsert('job_key, run_at', `'chaos-dup-key', 'infinity'`), [good()], ['inert']);
  col('job_key duplicate of an unfinished job', colInsert('job_key', `'chaos-dup-key'`), [good()], ['refused']);
  col('errors not an array', colInsert('errors', `'"oops"'`), [good()], ['completed', 'refused']);
  col('last_error 1 MB before running', colInsert('last_error', '$2'), [good(), 'e'.repeat(1_000_000)], ['completed']);
  col('job_id given, negative', `INSERT INTO broadcast_queue_jobs (job_id, job_type, payload) VALUES (-5, 'send', $1::jsonb) RETURNING job_id`, [good()], ['refused']); // broadcast_queue_jobs_job_id_below_2_53: ids start at 1
  // Ids past 2^53 do not survive a JavaScript number: the daemon must not lose, wedge or mix them up.
  cases.push({ label: 'columns: job_id given, 2^53 + 1', category: 'columns', sql: `INSERT INTO broadcast_queue_jobs (job_id, job_type, payload) VALUES (9007199254740993, 'send', $1::jsonb) RETURNING job_id::text`, params: [good()], expect: ['completed', 'failed', 'refused'], late: true });
  cases.push({ label: 'columns: job_id given, near 2^63', category: 'columns', sql: `INSERT INTO broadcast_queue_jobs (job_id, job_type, payload) VALUES (9223372036854775000, 'send', $1::jsonb) RETURNING job_id::text`, params: [good()], expect: ['completed', 'failed', 'refused'], late: true });
  col('created_at in the future', colInsert('created_at', `now() + interval '1 day'`), [good()], ['completed']);
  col('unknown column', `INSERT INTO broadcast_queue_jobs (job_type, payload, colour) VALUES ('send', $1::jsonb, 'red') RETURNING job_id`, [good()], ['refused']);
  return cases;
}
