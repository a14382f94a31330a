// Subscriber import: a CSV (header row) or JSON-lines stream, read record by record and upserted
// in batches, so a file of millions of rows never sits in memory. Each batch is ONE
// INSERT … SELECT FROM unnest(...) ON CONFLICT (chat_id) DO UPDATE per shape of row (in a uniform
// file, one per batch). A bad row is reported with its line number and skipped, or, in strict
// mode, stops the import (the caller runs it in a transaction so nothing is kept).
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { parse as parseCsv } from 'csv-parse';
import type { Pool, PoolClient } from '../db/pool.js';
import { PayloadError } from '../errors.js';
import { describeValue, parseChatId } from '../telegram/message.js';

export type ImportFormat = 'csv' | 'jsonl';

export interface SubscriberRecord {
  chatId: number;
  languageCode?: string;
  tags?: string[];
  optedOut?: boolean;
  subscribedAt?: string;
  lastActiveAt?: string;
  attributes?: Record<string, unknown>;
}

export interface Rejection { line: number; reason: string }

export interface ImportStats {
  /** Rows accepted and upserted. */
  imported: number;
  inserted: number;
  updated: number;
  rejected: number;
}

export interface ImportOptions {
  format: ImportFormat;
  strict?: boolean;
  batchSize?: number;
  onReject?: (rejection: Rejection) => void;
  onProgress?: (stats: ImportStats) => void;
}

/** In strict mode, the first bad row ends the import with this. */
export class RejectedRowError extends Error {
  override name = 'RejectedRowError';
  constructor(readonly rejection: Rejection) {
    super(`line ${rejection.line}: ${rejection.reason}`);
  }
}

/** csv or jsonl, from the file name when it says, else from the first non-blank character. */
export function detectFormat(fileName: string | undefined, head: string): ImportFormat {
  if (fileName && /\.csv$/i.test(fileName)) return 'csv';
  if (fileName && /\.(jsonl|ndjson|json)$/i.test(fileName)) return 'jsonl';
  return head.replace(/^\uFEFF/, '').trimStart().startsWith('{') ? 'jsonl' : 'csv';
}

// ---------------------------------------------------------------------------------------------
// Field normalisation, shared by both formats. Empty values mean "not given": the stored value is
// kept on update and the column default applies on insert.

const KNOWN = ['chat_id', 'language_code', 'tags', 'opted_out', 'subscribed_at', 'last_active_at'] as const;
const LANGUAGE = /^[A-Za-z0-9_-]{1,35}$/;
const ISO = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?$/i;

const reject = (reason: string): never => {
  throw new PayloadError(reason);
};
const blank = (v: unknown) => v === undefined || v === null || (typeof v === 'string' && v.trim() === '');

function chatId(v: unknown): number {
  if (typeof v === 'string' && /^\s*-?\d+\s*$/.test(v)) return parseChatId(Number(v), 'chat_id');
  if (blank(v)) reject('chat_id is missing');
  return parseChatId(v, 'chat_id');
}

function tags(v: unknown): string[] {
  const list = typeof v === 'string' ? v.split(/[;|]/) : Array.isArray(v) ? v : reject(`tags must be a list separated by ; or | (or a JSON array), got ${describeValue(v)}`);
  const bad = list.find((t) => typeof t !== 'string');
  if (bad !== undefined) reject(`tags must be strings, got ${describeValue(bad)}`);
  return [...new Set((list as string[]).map((t) => t.trim()).filter(Boolean))];
}

function flag(v: unknown): boolean {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string' && /^(1|true|yes|y|t)$/i.test(v.trim())) return true;
  if (typeof v === 'string' && /^(0|false|no|n|f)$/i.test(v.trim())) return false;
  return reject(`opted_out must be true or false, got ${describeValue(v)}`);
}

function timestamp(v: unknown, name: string): string {
  const ms = typeof v === 'string' && ISO.test(v.trim()) ? Date.parse(v.trim().replace(' ', 'T')) : NaN;
  if (Number.isNaN(ms)) reject(`${name} must be an ISO 8601 date or date-time, got ${describeValue(v)}`);
  return new Date(ms).toISOString();
}

/** One input record (field name → value) as a subscriber row; throws PayloadError with the reason. */
export function toSubscriber(fields: Record<string, unknown>): SubscriberRecord {
  const row: SubscriberRecord = { chatId: chatId(fields.chat_id) };
  const lang = fields.language_code;
  if (!blank(lang)) {
    if (typeof lang !== 'string' || !LANGUAGE.test(lang.trim())) reject(`language_code must be a language tag such as en or pt-br, got ${describeValue(lang)}`);
    row.languageCode = (lang as string).trim();
  }
  if (!blank(fields.tags)) row.tags = tags(fields.tags);
  if (!blank(fields.opted_out)) row.optedOut = flag(fields.opted_out);
  if (!blank(fields.subscribed_at)) row.subscribedAt = timestamp(fields.subscribed_at, 'subscribed_at');
  if (!blank(fields.last_active_at)) row.lastActiveAt = timestamp(fields.last_active_at, 'last_active_at');
  const attributes: Record<string, unknown> = {};
  const nested = fields.attributes;
  if (nested !== undefined && !blank(nested)) {
    if (typeof nested !== 'object' || Array.isArray(nested)) reject(`attributes must be an object, got ${describeValue(nested)}`);
    Object.assign(attributes, nested);
  }
  for (const [key, value] of Object.entries(fields)) {
    if (key === 'attributes' || (KNOWN as readonly string[]).includes(key) || blank(value)) continue;
    attributes[key] = value;
  }
  if (Object.keys(attributes).length) row.attributes = attributes;
  return row;
}

// ---------------------------------------------------------------------------------------------
// Upsert

const COLUMNS = [
  { key: 'languageCode', column: 'language_code', type: 'text', value: (r: SubscriberRecord) => r.languageCode, update: 'EXCLUDED.language_code' },
  { key: 'tags', column: 'tags', type: 'jsonb', value: (r: SubscriberRecord) => r.tags && JSON.stringify(r.tags), select: 'ARRAY(SELECT jsonb_array_elements_text(u.tags))', update: 'EXCLUDED.tags' },
  { key: 'optedOut', column: 'opted_out', type: 'bool', value: (r: SubscriberRecord) => r.optedOut, update: 'EXCLUDED.opted_out' },
  { key: 'subscribedAt', column: 'subscribed_at', type: 'timestamptz', value: (r: SubscriberRecord) => r.subscribedAt, update: 'EXCLUDED.subscribed_at' },
  { key: 'lastActiveAt', column: 'last_active_at', type: 'timestamptz', value: (r: SubscriberRecord) => r.lastActiveAt, update: 'EXCLUDED.last_active_at' },
  // Attributes merge: a file with a "plan" column does not erase a stored "city".
  { key: 'attributes', column: 'attributes', type: 'jsonb', value: (r: SubscriberRecord) => r.attributes && JSON.stringify(r.attributes), update: 's.attributes || EXCLUDED.attributes' },
] as const;

/** Upserts rows that all give the same columns; returns how many were new. */
async function upsertShape(db: Pool | PoolClient, rows: SubscriberRecord[]): Promise<number> {
  const cols = COLUMNS.filter((c) => rows[0]![c.key] !== undefined);
  const params: unknown[] = [rows.map((r) => r.chatId), ...cols.map((c) => rows.map((r) => c.value(r)))];
  const unnest = ['$1::bigint[]', ...cols.map((c, i) => `$${i + 2}::${c.type}[]`)].join(', ');
  const sql = `
    WITH up AS (
      INSERT INTO broadcast_subscribers AS s (chat_id${cols.map((c) => `, ${c.column}`).join('')})
      SELECT u.chat_id${cols.map((c) => `, ${'select' in c ? c.select : `u.${c.column}`}`).join('')}
        FROM unnest(${unnest}) AS u(chat_id${cols.map((c) => `, ${c.column}`).join('')})
      ON CONFLICT (chat_id) DO ${cols.length ? `UPDATE SET ${cols.map((c) => `${c.column} = ${c.update}`).join(', ')}` : 'NOTHING'}
      RETURNING (xmax = 0) AS inserted)
    SELECT count(*) FILTER (WHERE inserted)::int AS inserted FROM up`;
  return (await db.query(sql, params)).rows[0].inserted;
}

/** Upserts a batch: duplicates of a chat keep the last row; rows are grouped by the columns they give. */
async function upsertBatch(db: Pool | PoolClient, batch: SubscriberRecord[]): Promise<number> {
  const latest = new Map<number, SubscriberRecord>();
  for (const row of batch) latest.set(row.chatId, row);
  const shapes = new Map<string, SubscriberRecord[]>();
  for (const row of latest.values()) {
    const shape = COLUMNS.map((c) => (row[c.key] === undefined ? '0' : '1')).join('');
    (shapes.get(shape) ?? shapes.set(shape, []).get(shape)!).push(row);
  }
  let inserted = 0;
  for (const rows of shapes.values()) inserted += await upsertShape(db, rows);
  return inserted;
}

// ---------------------------------------------------------------------------------------------
// Reading

/** Records with their line numbers; a record that cannot be read at all comes as a rejection. */
type Item = { line: number; fields: Record<string, unknown> } | { line: number; reason: string };

async function* jsonLines(input: AsyncIterable<Buffer | string>): AsyncGenerator<Item> {
  const decoder = new StringDecoder('utf8');
  let rest = '';
  let line = 0;
  const parseLine = function* (text: string): Generator<Item> {
    line++;
    const trimmed = text.replace(/^\uFEFF/, '').trim();
    if (!trimmed) return;
    let value: unknown;
    try {
      value = JSON.parse(trimmed);
    } catch (error) {
      yield { line, reason: `not valid JSON: ${(error as Error).message}` };
      return;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) yield { line, reason: `must be a JSON object, got ${describeValue(value)}` };
    else yield { line, fields: value as Record<string, unknown> };
  };
  for await (const chunk of input) {
    const lines = (rest + (typeof chunk === 'string' ? chunk : decoder.write(chunk))).split('\n');
    rest = lines.pop()!;
    for (const text of lines) yield* parseLine(text);
  }
  rest += decoder.end();
  if (rest.trim()) yield* parseLine(rest);
}

async function* csvRecords(input: Readable): AsyncGenerator<Item> {
  const skipped: Item[] = [];
  const parser = parseCsv({
    bom: true, info: true, skip_empty_lines: true, skip_records_with_error: true,
    on_skip: (err) => void skipped.push({ line: Number(err?.lines ?? 0), reason: `unreadable CSV: ${err?.message ?? 'bad record'}` }),
  });
  input.on('error', (error) => parser.destroy(error));
  let header: string[] | null = null;
  for await (const { record, info } of input.pipe(parser) as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
    // The parser reports skipped records as it reads a chunk, ahead of the records we are handed:
    // give back those on earlier lines first, so rejections come out in line order.
    while (skipped.length && skipped[0]!.line < info.lines) yield skipped.shift()!;
    if (!header) {
      header = record.map((h) => h.trim().toLowerCase());
      if (!header.includes('chat_id')) throw new PayloadError(`the CSV header row has no chat_id column (got: ${header.join(', ')})`);
      const dup = header.find((h, i) => header!.indexOf(h) !== i);
      if (dup) throw new PayloadError(`the CSV header row names ${dup} twice`);
      continue;
    }
    yield { line: info.lines, fields: Object.fromEntries(header.map((h, i) => [h, record[i]])) };
  }
  yield* skipped.splice(0);
}

/** Reads the stream to the end, upserting as it goes. */
export async function importSubscribers(db: Pool | PoolClient, input: Readable, options: ImportOptions): Promise<ImportStats> {
  const batchSize = options.batchSize ?? 1_000;
  const stats: ImportStats = { imported: 0, inserted: 0, updated: 0, rejected: 0 };
  let batch: SubscriberRecord[] = [];
  const flush = async () => {
    if (!batch.length) return;
    const inserted = await upsertBatch(db, batch);
    stats.imported += batch.length;
    stats.inserted += inserted;
    // Duplicates within a batch were written once; count them as updates of that row.
    stats.updated += batch.length - inserted;
    batch = [];
    options.onProgress?.({ ...stats });
  };
  const items = options.format === 'csv' ? csvRecords(input) : jsonLines(input);
  for await (const item of items) {
    let row: SubscriberRecord | null = null;
    let reason = 'reason' in item ? item.reason : null;
    if ('fields' in item) {
      try {
        row = toSubscriber(item.fields);
      } catch (error) {
        if (!(error instanceof PayloadError)) throw error;
        reason = error.message;
      }
    }
    if (reason !== null) {
      const rejection = { line: item.line, reason };
      if (options.strict) throw new RejectedRowError(rejection);
      stats.rejected++;
      options.onReject?.(rejection);
      continue;
    }
    batch.push(row!);
    if (batch.length >= batchSize) await flush();
  }
  await flush();
  return stats;
}
