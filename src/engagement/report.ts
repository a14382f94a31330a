// What worked: one broadcast's engagement, in total and per variant, read from the ledger (who was
// delivered, and which variant they got) and broadcast_engagement (what they did). The record
// leaves the project as is (admin API, bqctl --json), so its fields are snake_case.
//
// A/B: with two or more variants, the variant best on the chosen metric (AB_METRICS: the highest
// click-through or reply rate, the lowest opt-out or block rate) is compared with each other
// variant by a two-sided two-proportion z-test (pooled); it is the winner only when every
// comparison is significant at 0.05 / (variants − 1) (Bonferroni), else winner is null.
import type { Pool, PoolClient } from '../db/pool.js';
import { trackedParts } from './links.js';

export interface EngagementCounts {
  delivered: number;
  unique_clickers: number;
  clicks: number;
  /** unique_clickers ÷ delivered; null when nothing was delivered. */
  ctr: number | null;
  presses: number;
  unique_pressers: number;
  replies: number;
  /** Recipients who replied; reply_rate = repliers ÷ delivered. */
  repliers: number;
  reply_rate: number | null;
  reactions: number;
  opt_outs: number;
  opt_out_rate: number | null;
  blocks: number;
  block_rate: number | null;
}

export interface BroadcastReport extends EngagementCounts {
  broadcast_id: number;
  title: string | null;
  status: string;
  track: boolean;
  links: { index: number; url: string; clicks: number; unique_clickers: number }[];
  variants: (EngagementCounts & { name: string })[];
  ab_test: {
    metric: AbMetric; better: 'higher' | 'lower'; test: 'two-proportion z-test'; alpha: number; p_value: number | null;
    /** Test, then send the winner (the broadcast's ab_test field); null for variants sent to everyone. */
    plan: { sample_percent: number; decide_after: string; fallback: string; decide_at: Date | null } | null;
    /** What was decided at decide_at on the sample's numbers then; null until then. */
    decision: { decided_at: Date; winner: string | null; p_value: number | null; sent_variant: string } | null;
  } | null;
  /** The variants' test on their recipients now (with the plan: the sample's), so it may differ from decision.winner later on. */
  winner: string | null;
  /** With a plan: the recipients outside the sample, sent `variant` (null until the decision); `waiting` not sent yet. */
  rest: (EngagementCounts & { variant: string | null; waiting: number }) | null;
}

const ALPHA = 0.05;

/**
 * What an A/B test may decide on: each is a share of the delivered recipients (`people` of them
 * did it), so the two-proportion test applies, and `better` says which way wins.
 */
export const AB_METRICS = {
  ctr: { people: 'unique_clickers', better: 'higher' },
  reply_rate: { people: 'repliers', better: 'higher' },
  opt_out_rate: { people: 'opt_outs', better: 'lower' },
  block_rate: { people: 'blocks', better: 'lower' },
} as const;
export type AbMetric = keyof typeof AB_METRICS;

/** The metric a broadcast's ab_test names; ctr when it names none (or none known: the engine refuses those). */
export function abMetricOf(abTestField: unknown): AbMetric {
  const metric = (abTestField as { metric?: unknown } | null)?.metric;
  return typeof metric === 'string' && Object.hasOwn(AB_METRICS, metric) ? (metric as AbMetric) : 'ctr';
}

const BROADCAST_SQL = `
  SELECT broadcast_id, title, status, track, message, variants, ab_test, ab_decide_at, ab_decided_at, ab_winner, ab_p_value, ab_sent_variant
    FROM broadcasts WHERE broadcast_id = $1`;
const DELIVERED_SQL = `
  SELECT variant, count(*) FILTER (WHERE status = 'sent')::int AS delivered, count(*) FILTER (WHERE status = 'pending')::int AS waiting
    FROM broadcast_deliveries WHERE broadcast_id = $1 GROUP BY variant`;
// Per variant and in total (the grouping set without the variant), so a recipient counts once.
const EVENTS_SQL = `
  SELECT d.variant, e.kind, GROUPING(d.variant) = 1 AS total, count(*)::int AS events, count(DISTINCT e.chat_id)::int AS people
    FROM broadcast_engagement e
    LEFT JOIN broadcast_deliveries d ON d.broadcast_id = e.broadcast_id AND d.chat_id = e.chat_id
   WHERE e.broadcast_id = $1
   GROUP BY GROUPING SETS ((d.variant, e.kind), (e.kind))`;
const LINKS_SQL = `
  SELECT link_index, count(*)::int AS clicks, count(DISTINCT chat_id)::int AS people FROM broadcast_engagement
   WHERE broadcast_id = $1 AND kind = 'click' GROUP BY link_index ORDER BY link_index`;

const rate = (part: number, whole: number) => (whole > 0 ? part / whole : null);

function counts(delivered: number, events: Map<string, { events: number; people: number }>): EngagementCounts {
  const e = (kind: string) => events.get(kind) ?? { events: 0, people: 0 };
  return {
    delivered,
    unique_clickers: e('click').people,
    clicks: e('click').events,
    ctr: rate(e('click').people, delivered),
    presses: e('press').events,
    unique_pressers: e('press').people,
    replies: e('reply').events,
    repliers: e('reply').people,
    reply_rate: rate(e('reply').people, delivered),
    reactions: e('reaction').events,
    opt_outs: e('opt_out').people,
    opt_out_rate: rate(e('opt_out').people, delivered),
    blocks: e('block').people,
    block_rate: rate(e('block').people, delivered),
  };
}

/** The report of one broadcast, or null when it does not exist. */
export async function broadcastReport(pool: Pool | PoolClient, broadcastId: number): Promise<BroadcastReport | null> {
  const b = (await pool.query(BROADCAST_SQL, [broadcastId])).rows[0];
  if (!b) return null;
  const read = (sql: string) => pool.query(sql, [broadcastId]);
  // On a pool the three run on three connections; one client (the dashboard's bounded read) runs them in turn.
  const [delivered, events, links] = 'totalCount' in pool
    ? await Promise.all([read(DELIVERED_SQL), read(EVENTS_SQL), read(LINKS_SQL)])
    : [await read(DELIVERED_SQL), await read(EVENTS_SQL), await read(LINKS_SQL)];
  const deliveredBy = new Map<string | null, number>(delivered.rows.map((r) => [r.variant, r.delivered]));
  const byVariant = new Map<string | null, Map<string, { events: number; people: number }>>();
  const total = new Map<string, { events: number; people: number }>();
  for (const r of events.rows) {
    const target = r.total ? total : byVariant.get(r.variant) ?? byVariant.set(r.variant, new Map()).get(r.variant)!;
    target.set(r.kind, { events: r.events, people: r.people });
  }
  const variantNames: string[] = Array.isArray(b.variants) ? b.variants.map((v: { name: string }) => v.name) : [];
  const variants = variantNames.map((name) => ({ name, ...counts(deliveredBy.get(name) ?? 0, byVariant.get(name) ?? new Map()) }));
  const messages = Array.isArray(b.variants) && b.variants.length ? b.variants.map((v: { message: Record<string, unknown> }) => v.message) : [b.message];
  const urls = b.track ? trackedParts(messages).urls : [];
  const metric = abMetricOf(b.ab_test);
  const ab = variants.length >= 2 ? abTest(variants, metric) : null;
  const plan = ab && b.ab_test
    ? { sample_percent: b.ab_test.sample_percent, decide_after: b.ab_test.decide_after, fallback: b.ab_test.fallback ?? variantNames[0]!, decide_at: b.ab_decide_at }
    : null;
  const decision = plan && b.ab_decided_at ? { decided_at: b.ab_decided_at, winner: b.ab_winner, p_value: b.ab_p_value, sent_variant: b.ab_sent_variant } : null;
  // The rest's rows have no variant (broadcast/ab-test.ts), so they are the NULL group.
  const rest = plan
    ? { variant: decision?.sent_variant ?? null, waiting: delivered.rows.find((r) => r.variant === null)?.waiting ?? 0, ...counts(deliveredBy.get(null) ?? 0, byVariant.get(null) ?? new Map()) }
    : null;
  return {
    broadcast_id: b.broadcast_id,
    title: b.title,
    status: b.status,
    track: b.track,
    ...counts([...deliveredBy.values()].reduce((s, x) => s + x, 0), total),
    links: links.rows.map((r) => ({ index: r.link_index, url: urls[r.link_index] ?? '', clicks: r.clicks, unique_clickers: r.people })),
    variants,
    ab_test: ab ? { metric, better: AB_METRICS[metric].better, test: 'two-proportion z-test', alpha: ALPHA, p_value: ab.pValue, plan, decision } : null,
    winner: ab?.winner ?? null,
    rest,
  };
}

/** The best variant on `metric` against each other one; its largest p-value, and the winner if every comparison is significant. */
export function abTest(variants: ({ name: string; delivered: number } & Partial<Record<(typeof AB_METRICS)[AbMetric]['people'], number>>)[], metric: AbMetric = 'ctr'): { pValue: number | null; winner: string | null } {
  const { people, better } = AB_METRICS[metric];
  const tested = variants.filter((v) => v.delivered > 0);
  if (tested.length < 2) return { pValue: null, winner: null };
  const share = (v: (typeof tested)[number]) => (v[people] ?? 0) / v.delivered;
  const best = tested.reduce((a, v) => ((better === 'higher' ? share(v) > share(a) : share(v) < share(a)) ? v : a));
  let worst = 0;
  for (const other of tested) {
    if (other === best) continue;
    worst = Math.max(worst, twoProportionPValue(best[people] ?? 0, best.delivered, other[people] ?? 0, other.delivered));
  }
  return { pValue: worst, winner: worst < ALPHA / (tested.length - 1) ? best.name : null };
}

/** Two-sided p-value of the pooled two-proportion z-test; 1 when the pooled proportion is 0 or 1 (no difference to see). */
export function twoProportionPValue(x1: number, n1: number, x2: number, n2: number): number {
  const pooled = (x1 + x2) / (n1 + n2);
  const se = Math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2));
  if (se === 0) return 1;
  const z = Math.abs(x1 / n1 - x2 / n2) / se;
  return Math.min(1, 2 * (1 - normalCdf(z)));
}

/** Φ(z) through erf (Abramowitz and Stegun 7.1.26, absolute error below 1.5e-7). */
function normalCdf(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const erf = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return z >= 0 ? (1 + erf) / 2 : (1 - erf) / 2;
}
