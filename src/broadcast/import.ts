// Subscriber import: a CSV (header row) or JSON-lines stream, read record by record and upserted
// in batches, so a file of millions of rows never sits in memory. Each batch is ONE
// INSERT … SELECT FROM unnest(...) ON CONFLICT (chat_id) DO UPDATE per shape of row (in a uniform
// file, one per batch). A bad row is reported with its line number and skipped, or, in strict
// mode, stops the import (the caller runs it in a transaction so nothing is kept). A row that
// passes validation but that PostgreSQL still refuses costs its batch one retry row by row, so
// the refusal too is a rejection with a line number, not the end of the import.
import type { Readable } from 'node:stream';
import type { Pool, PoolClient } from '../db/pool.js';
import { PayloadError, RejectedRowError, type Rejection } from '../errors.js';
import { describeValue, parseChatId } from '../telegram/message.js';
import { csvRecords, jsonLines, MAX_RECORD_BYTES } from './import-read.js';
import { parseTimeZone } from './local-time.js';

export { MAX_RECORD_BYTES };

export type ImportFormat = 'csv' | 'jsonl';

export interface SubscriberRecord {
  chatId: number;
  languageCode?: string;
  tags?: string[];
  optedOut?: boolean;
  subscribedAt?: string;
  lastActiveAt?: string;
  /** IANA name; the zone a deliver_at_local broadcast reads for this subscriber. */
  timeZone?: string;
  attributes?: Record<string, unknown>;
}

export type { Rejection };

export interface ImportStats {
  /** Records read (a CSV header and blank lines are not records): always imported + rejected. */
  read: number;
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

/**
 * The import stopped on something that is not a row's fault (the database went away, the file
 * could not be read). Every row up to `keptThroughLine` that was not rejected is stored; nothing
 * after it is.
 */
export class ImportStoppedError extends Error {
  override name = 'ImportStoppedError';
  constructor(override readonly cause: unknown, readonly stats: ImportStats, readonly keptThroughLine: number) {
    super(`the import stopped: ${cause instanceof Error ? cause.message : String(cause)}`);
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

const KNOWN = ['chat_id', 'language_code', 'tags', 'opted_out', 'subscribed_at', 'last_active_at', 'time_zone'] as const;
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

/** The name of the first field holding a NUL character anywhere in its value, if any. */
function fieldWithNul(fields: Record<string, unknown>): string | undefined {
  const has = (v: unknown): boolean => {
    if (typeof v === 'string') return v.includes('\0');
    if (Array.isArray(v)) return v.some(has);
    if (v && typeof v === 'object') return Object.entries(v).some(([k, x]) => k.includes('\0') || has(x));
    return false;
  };
  return Object.keys(fields).find((k) => k.includes('\0') || has(fields[k]));
}

/** One input record (field name → value) as a subscriber row; throws PayloadError with the reason. */
export function toSubscriber(fields: Record<string, unknown>): SubscriberRecord {
  // PostgreSQL stores no NUL in text or jsonb; one would fail the whole batch it is in.
  const nul = fieldWithNul(fields);
  if (nul !== undefined) reject(`${JSON.stringify(nul.replace(/\0/g, '\\0'))} contains a NUL character (\\u0000), which PostgreSQL cannot store`);
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
  if (!blank(fields.time_zone)) row.timeZone = parseTimeZone(typeof fields.time_zone === 'string' ? fields.time_zone.trim() : fields.time_zone, 'time_zone');
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
  { key: 'timeZone', column: 'time_zone', type: 'text', value: (r: SubscriberRecord) => r.timeZone, update: 'EXCLUDED.time_zone' },
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

/** A data error (class 22) or a broken constraint (23): the row's fault, not the connection's. */
const rowRefused = (error: unknown) => /^2[23]/.test(String((error as { code?: unknown }).code ?? ''));

interface Pending { row: SubscriberRecord; line: number }

/** Reads the stream to the end, upserting as it goes. */
export async function importSubscribers(db: Pool | PoolClient, input: Readable, options: ImportOptions): Promise<ImportStats> {
  const batchSize = options.batchSize ?? 1_000;
  const stats: ImportStats = { read: 0, imported: 0, inserted: 0, updated: 0, rejected: 0 };
  let batch: Pending[] = [];
  let batchBytes = 0;
  let keptThroughLine = 0;
  let lastLine = 0;

  const rejected = (rejection: Rejection) => {
    if (options.strict) throw new RejectedRowError(rejection);
    stats.rejected++;
    options.onReject?.(rejection);
  };
  const upserted = (rows: number, inserted: number) => {
    stats.imported += rows;
    stats.inserted += inserted;
    // Duplicates within a batch were written once; count them as updates of that row.
    stats.updated += rows - inserted;
  };
  // In strict mode the caller's transaction would be aborted by a refused statement: a savepoint
  // lets the batch be retried row by row to name the line.
  const attempt = async <T>(fn: () => Promise<T>): Promise<T> => {
    if (!options.strict) return fn();
    await db.query('SAVEPOINT import_batch');
    try {
      const result = await fn();
      await db.query('RELEASE SAVEPOINT import_batch');
      return result;
    } catch (error) {
      await db.query('ROLLBACK TO SAVEPOINT import_batch');
      throw error;
    }
  };
  const flush = async () => {
    if (!batch.length) return;
    const rows = batch;
    batch = [];
    batchBytes = 0;
    try {
      upserted(rows.length, await attempt(() => upsertBatch(db, rows.map((p) => p.row))));
    } catch (error) {
      if (!rowRefused(error)) throw error;
      for (const p of rows) {
        try {
          upserted(1, await attempt(() => upsertBatch(db, [p.row])));
        } catch (rowError) {
          if (!rowRefused(rowError)) throw rowError;
          rejected({ line: p.line, reason: `PostgreSQL refused the row: ${(rowError as Error).message}` });
        }
      }
    }
    keptThroughLine = lastLine;
    options.onProgress?.({ ...stats });
  };

  try {
    const items = options.format === 'csv' ? csvRecords(input) : jsonLines(input);
    for await (const item of items) {
      stats.read++;
      lastLine = item.line;
      if ('reason' in item) {
        rejected({ line: item.line, reason: item.reason });
        continue;
      }
      try {
        batch.push({ row: toSubscriber(item.fields), line: item.line });
      } catch (error) {
        if (!(error instanceof PayloadError)) throw error;
        rejected({ line: item.line, reason: error.message });
        continue;
      }
      batchBytes += item.bytes;
      // Bytes as well as rows: 1,000 rows near the record limit would be 64 MB.
      if (batch.length >= batchSize || batchBytes >= 8 * 1024 * 1024) await flush();
    }
    await flush();
  } catch (error) {
    if (error instanceof RejectedRowError || error instanceof PayloadError) throw error;
    throw new ImportStoppedError(error, { ...stats, read: stats.imported + stats.rejected }, keptThroughLine);
  }
  return stats;
}
