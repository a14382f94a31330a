// Who a broadcast goes to. An audience is a JSON object stored in broadcasts.audience: either an
// explicit list of chats ({"chat_ids": [...]}) or a segment of broadcast_subscribers ({} for all of
// them, or filters ANDed together). It becomes ONE SQL FROM item with numbered parameters, which
// the fan-out uses as `INSERT INTO broadcast_deliveries … SELECT … FROM <from>` and bqctl uses to
// count. Values never enter the SQL text; they all travel as parameters.
//
// The recipients include opted-out and unreachable subscribers, flagged in the opted_out and
// unreachable_reason columns, so the caller can record them as skipped instead of losing them.

import { PayloadError } from '../errors.js';
import type { Pool, PoolClient } from '../db/pool.js';
import { describeValue, parseChatId, typeName } from '../telegram/message.js';

export const MAX_CHAT_IDS = 1_000_000;
const MAX_LIST = 10_000;
const MAX_DAYS = 36_500;

export type AudienceFilterName =
  | 'chat_ids'
  | 'exclude_chat_ids'
  | 'tags_any'
  | 'tags_all'
  | 'languages'
  | 'active_within_days'
  | 'subscribed_before'
  | 'subscribed_after'
  | 'attributes';

/** The audience keys, with the value each takes and what it selects; for bqctl help and the README. */
export const AUDIENCE_FILTERS: ReadonlyArray<{ name: AudienceFilterName; value: string; doc: string }> = [
  { name: 'chat_ids', value: 'integer[]', doc: 'exactly these chats (need not be subscribers; a subscriber\'s opt-out still applies); combines only with exclude_chat_ids' },
  { name: 'exclude_chat_ids', value: 'integer[]', doc: 'never these chats' },
  { name: 'tags_any', value: 'string[]', doc: 'subscribers with at least one of these tags' },
  { name: 'tags_all', value: 'string[]', doc: 'subscribers with every one of these tags' },
  { name: 'languages', value: 'string[]', doc: 'subscribers whose language_code is one of these (case-insensitive, exact: "en" does not match "en-GB")' },
  { name: 'active_within_days', value: 'number', doc: 'subscribers whose last_active_at is within this many days' },
  { name: 'subscribed_before', value: 'ISO date', doc: 'subscribers who subscribed before this time (2024-05-01 or 2024-05-01T12:00:00Z)' },
  { name: 'subscribed_after', value: 'ISO date', doc: 'subscribers who subscribed after this time' },
  { name: 'attributes', value: 'object', doc: 'subscribers whose attributes contain every key with exactly this value ({"plan": "pro"})' },
];

const FILTER_NAMES = AUDIENCE_FILTERS.map((f) => f.name);
const SEGMENT_FILTERS = FILTER_NAMES.filter((n) => n !== 'chat_ids' && n !== 'exclude_chat_ids');

type Scalar = string | number | boolean | null;

/** An audience after validation: lists de-duplicated, dates normalised to ISO strings in UTC. */
export interface AudienceSpec {
  chat_ids?: number[];
  exclude_chat_ids?: number[];
  tags_any?: string[];
  tags_all?: string[];
  languages?: string[];
  active_within_days?: number;
  subscribed_before?: string;
  subscribed_after?: string;
  attributes?: Record<string, Scalar>;
}

export interface AudienceQuery {
  /**
   * A FROM item aliased `r`, with columns chat_id bigint, opted_out boolean,
   * unreachable_reason text (null when reachable or unknown) and time_zone text (null when the
   * subscriber has none, or the chat is not a subscriber).
   */
  from: string;
  /** Values for $firstParam, $firstParam + 1, … in `from`. */
  params: unknown[];
}

const fail = (message: string): never => {
  throw new PayloadError(message);
};

function chatIdList(value: unknown, path: string, allowEmpty: boolean): number[] {
  if (!Array.isArray(value) || (value.length === 0 && !allowEmpty)) {
    return fail(`${path} must be ${allowEmpty ? 'an' : 'a non-empty'} array of chat ids, got ${Array.isArray(value) ? 'an empty array' : typeName(value)}`);
  }
  if (value.length > MAX_CHAT_IDS) fail(`${path} must have at most ${MAX_CHAT_IDS} entries, got ${value.length}`);
  const ids = new Set<number>();
  value.forEach((id, i) => ids.add(parseChatId(id, `${path}[${i}]`)));
  return [...ids];
}

function stringList(value: unknown, path: string): string[] {
  const ok = Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'string' && v !== '');
  if (!ok) {
    const bad = Array.isArray(value) ? value.findIndex((v) => typeof v !== 'string' || v === '') : -1;
    const got = !Array.isArray(value) ? typeName(value) : value.length === 0 ? 'an empty array' : `${describeValue(value[bad])} at [${bad}]`;
    fail(`${path} must be a non-empty array of strings, got ${got}`);
  }
  const list = value as string[];
  if (list.length > MAX_LIST) fail(`${path} must have at most ${MAX_LIST} entries, got ${list.length}`);
  return [...new Set(list)];
}

// A date, or a date-time with a zone: a time without a zone would mean the server's local time.
const ISO_DATE = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?))?$/i;

function isoDate(value: unknown, path: string): string {
  const ms = typeof value === 'string' && ISO_DATE.test(value) ? Date.parse(value.replace(' ', 'T')) : NaN;
  if (Number.isNaN(ms)) fail(`${path} must be an ISO 8601 date or date-time with a zone (2024-05-01 or 2024-05-01T12:00:00Z), got ${describeValue(value)}`);
  return new Date(ms).toISOString();
}

function attributes(value: unknown, path: string): Record<string, Scalar> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail(`${path} must be an object of attribute values, got ${typeName(value)}`);
  const entries = Object.entries(value);
  if (entries.length === 0) fail(`${path} must name at least one attribute`);
  for (const [key, v] of entries) {
    const scalar = v === null || typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v));
    if (!scalar) fail(`${path}.${key} must be a string, number, boolean or null, got ${typeName(v)}`);
  }
  return value as Record<string, Scalar>;
}

/** Validates an audience object; throws PayloadError naming the first problem. */
export function parseAudience(value: unknown, path = 'audience'): AudienceSpec {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail(`${path} must be an object, got ${typeName(value)}`);
  const input = value as Record<string, unknown>;
  const keys = Object.keys(input).filter((k) => input[k] !== undefined);
  const unknown = keys.filter((k) => !(FILTER_NAMES as string[]).includes(k));
  if (unknown.length) {
    fail(`${path} has unknown filter${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => JSON.stringify(k)).join(', ')} (known filters: ${FILTER_NAMES.join(', ')})`);
  }

  const spec: AudienceSpec = {};
  const at = (name: string) => `${path}.${name}`;
  if (input.chat_ids !== undefined) {
    const segment = SEGMENT_FILTERS.filter((n) => keys.includes(n));
    if (segment.length) fail(`${at('chat_ids')} cannot be combined with segment filters (${segment.join(', ')}); list the chats, or select subscribers`);
    spec.chat_ids = chatIdList(input.chat_ids, at('chat_ids'), false);
  }
  if (input.exclude_chat_ids !== undefined) spec.exclude_chat_ids = chatIdList(input.exclude_chat_ids, at('exclude_chat_ids'), true);
  if (input.tags_any !== undefined) spec.tags_any = stringList(input.tags_any, at('tags_any'));
  if (input.tags_all !== undefined) spec.tags_all = stringList(input.tags_all, at('tags_all'));
  if (input.languages !== undefined) spec.languages = [...new Set(stringList(input.languages, at('languages')).map((l) => l.toLowerCase()))];
  if (input.active_within_days !== undefined) {
    const days = input.active_within_days;
    if (typeof days !== 'number' || !Number.isFinite(days) || days <= 0) fail(`${at('active_within_days')} must be a positive number, got ${describeValue(days)}`);
    if ((days as number) > MAX_DAYS) fail(`${at('active_within_days')} must be at most ${MAX_DAYS}, got ${days as number}`);
    spec.active_within_days = days as number;
  }
  if (input.subscribed_before !== undefined) spec.subscribed_before = isoDate(input.subscribed_before, at('subscribed_before'));
  if (input.subscribed_after !== undefined) spec.subscribed_after = isoDate(input.subscribed_after, at('subscribed_after'));
  if (spec.subscribed_before && spec.subscribed_after && spec.subscribed_after >= spec.subscribed_before) {
    fail(`${at('subscribed_after')} must be earlier than ${at('subscribed_before')}, got ${spec.subscribed_after} and ${spec.subscribed_before}`);
  }
  if (input.attributes !== undefined) spec.attributes = attributes(input.attributes, at('attributes'));
  return spec;
}

/**
 * Validates an audience and builds the FROM item that selects its recipients, each chat once.
 * Parameters are numbered from $firstParam so the caller can put its own first.
 */
export function buildAudienceQuery(audience: unknown, firstParam: number, path = 'audience'): AudienceQuery {
  if (!Number.isInteger(firstParam) || firstParam < 1) throw new RangeError(`firstParam must be a positive integer, got ${firstParam}`);
  const spec = parseAudience(audience, path);
  const params: unknown[] = [];
  const param = (value: unknown, type: string): string => {
    params.push(value);
    return `$${firstParam + params.length - 1}::${type}`;
  };

  if (spec.chat_ids) {
    // Excluding in JS keeps the array parameter small; chatIdList already removed duplicates, so
    // unnest yields each chat once.
    const excluded = new Set(spec.exclude_chat_ids ?? []);
    const ids = spec.chat_ids.filter((id) => !excluded.has(id));
    return {
      from:
        '(SELECT c.chat_id, COALESCE(s.opted_out, false) AS opted_out, s.unreachable_reason, s.time_zone' +
        ` FROM unnest(${param(ids, 'bigint[]')}) AS c(chat_id)` +
        ' LEFT JOIN broadcast_subscribers s USING (chat_id)) r',
      params,
    };
  }

  const where: string[] = [];
  if (spec.tags_any) where.push(`s.tags && ${param(spec.tags_any, 'text[]')}`);
  if (spec.tags_all) where.push(`s.tags @> ${param(spec.tags_all, 'text[]')}`);
  if (spec.languages) where.push(`lower(s.language_code) = ANY(${param(spec.languages, 'text[]')})`);
  if (spec.active_within_days !== undefined) {
    where.push(`s.last_active_at > now() - ${param(spec.active_within_days, 'double precision')} * interval '1 day'`);
  }
  if (spec.subscribed_before) where.push(`s.subscribed_at < ${param(spec.subscribed_before, 'timestamptz')}`);
  if (spec.subscribed_after) where.push(`s.subscribed_at > ${param(spec.subscribed_after, 'timestamptz')}`);
  if (spec.attributes) where.push(`s.attributes @> ${param(JSON.stringify(spec.attributes), 'jsonb')}`);
  if (spec.exclude_chat_ids?.length) where.push(`s.chat_id <> ALL(${param(spec.exclude_chat_ids, 'bigint[]')})`);

  return {
    from:
      '(SELECT s.chat_id, s.opted_out, s.unreachable_reason, s.time_zone FROM broadcast_subscribers s' +
      (where.length ? ` WHERE ${where.join(' AND ')}` : '') +
      ') r',
    params,
  };
}

/**
 * SQL: why a recipient (`r`, a row with opted_out and unreachable_reason) is not sent to, as the
 * skipped row's outcome ('opted_out' before 'unreachable'); NULL when they can be. The fan-out
 * skips by it, and an A/B test's held rest is checked by it again at the decision (ab-test.ts).
 */
export const unsendableOutcomeSql = (r: string) =>
  `(CASE WHEN ${r}.opted_out THEN 'opted_out' WHEN ${r}.unreachable_reason IS NOT NULL THEN 'unreachable' END)`;

/**
 * SQL: recipient `r` already got `capParam` (an SQL expression) or more broadcast messages in the
 * last 24 hours, so a broadcast with that frequency cap skips them (fanout.ts, countAudience).
 */
export function overFrequencyCapSql(capParam: string): string {
  return `(SELECT count(*) FROM broadcast_deliveries x WHERE x.chat_id = r.chat_id AND x.status = 'sent' AND x.sent_at > now() - interval '24 hours') >= ${capParam}`;
}

export interface AudienceCount {
  /** Every recipient the audience selects. */
  total: number;
  /** Those a broadcast would send to: not opted out, not marked unreachable (and not over the frequency cap, when one is given). */
  reachable: number;
  /** Opted out (counted here even when also unreachable). */
  opted_out: number;
  /** Marked unreachable and not opted out; total = reachable + opted_out + unreachable (+ over_frequency_cap). */
  unreachable: number;
  /** With a frequency cap: neither opted out nor unreachable, but over the cap (what fanOut skips as 'frequency_cap'). */
  over_frequency_cap?: number;
}

/**
 * Counts an audience for `bqctl subscribers count` and for previews before sending (the
 * dashboard's Compose page), with the frequency cap a broadcast would apply when one is given.
 */
export async function countAudience(pool: Pool | PoolClient, audience: unknown, path = 'audience', frequencyCap: number | null = null): Promise<AudienceCount> {
  const { from, params } = buildAudienceQuery(audience, frequencyCap === null ? 1 : 2, path);
  const overCap = frequencyCap === null ? 'false' : overFrequencyCapSql('$1::int');
  const { rows } = await pool.query<{ total: number; reachable: number; opted_out: number; unreachable: number; over_cap: number }>(
    `SELECT count(*)::int AS total,
            count(*) FILTER (WHERE NOT r.opted_out AND r.unreachable_reason IS NULL AND NOT r.over_cap)::int AS reachable,
            count(*) FILTER (WHERE r.opted_out)::int AS opted_out,
            count(*) FILTER (WHERE NOT r.opted_out AND r.unreachable_reason IS NOT NULL)::int AS unreachable,
            count(*) FILTER (WHERE NOT r.opted_out AND r.unreachable_reason IS NULL AND r.over_cap)::int AS over_cap
       FROM (SELECT r.*, ${overCap} AS over_cap FROM ${from}) r`,
    frequencyCap === null ? params : [frequencyCap, ...params],
  );
  const row = rows[0]!;
  return {
    total: row.total, reachable: row.reachable, opted_out: row.opted_out, unreachable: row.unreachable,
    ...(frequencyCap === null ? {} : { over_frequency_cap: row.over_cap }),
  };
}
