// The engagement area's SQL: the subscriber list the bot keeps from its updates, and the events
// (clicks, presses, replies, reactions, opt-outs, blocks) recorded against a broadcast. Every write
// takes a whole batch in one statement (unnest of arrays), so its cost is per flush, not per update.
import type { Pool, PoolClient } from '../db/pool.js';
import { inTransaction } from '../db/transaction.js';

/** What a batch of updates said about one chat, coalesced: the last word on each field wins. */
export interface SubscriberChange {
  chatId: number;
  /** Seen active in this minute (truncated); null when the update said nothing about activity. */
  activeAt: Date | null;
  languageCode: string | null;
  /** true: opted out (/stop), false: opted back in (/start), undefined: no change. */
  optedOut?: { value: boolean; at: Date };
  /** A reason ('blocked', 'kicked', 'left') makes the chat unreachable; null makes it reachable again. */
  unreachable?: { reason: string | null; at: Date };
  /** From capture.timeZone, already accepted by Intl; undefined: leave the stored zone alone. */
  timeZone?: string;
}

/** A zone Intl accepted and this server's tzdata did not (sql/0020's CHECK): not written, the rest of the flush is. */
export interface RefusedZone {
  chatId: number;
  timeZone: string;
  error: string;
}

export type EngagementKind = 'click' | 'press' | 'reply' | 'reaction' | 'opt_out' | 'block';

export interface EngagementEvent {
  broadcastId: number;
  chatId: number;
  kind: EngagementKind;
  linkIndex: number | null;
  at: Date;
}

/** An event on a message the bot sent, matched to a broadcast through the ledger's message_id. */
export interface MessageEvent {
  chatId: number;
  messageId: number;
  kind: 'reply' | 'reaction';
  at: Date;
}

/** An opt-out or block not yet tied to a broadcast: the latest one the chat received within 72 h gets it. */
export interface LeaveEvent {
  chatId: number;
  kind: 'opt_out' | 'block';
  at: Date;
}

// First seen is subscribed_at's default; language and activity only ever move forward.
const UPSERT_ACTIVE_SQL = `
  INSERT INTO broadcast_subscribers AS s (chat_id, language_code, last_active_at)
  SELECT c, l, a FROM unnest($1::bigint[], $2::text[], $3::timestamptz[]) AS u(c, l, a)
  ON CONFLICT (chat_id) DO UPDATE
     SET language_code = COALESCE(EXCLUDED.language_code, s.language_code),
         last_active_at = GREATEST(s.last_active_at, EXCLUDED.last_active_at)
   WHERE EXCLUDED.language_code IS DISTINCT FROM s.language_code
      OR s.last_active_at IS NULL OR EXCLUDED.last_active_at > s.last_active_at`;

const TIME_ZONE_SQL = `
  UPDATE broadcast_subscribers s SET time_zone = u.z
    FROM unnest($1::bigint[], $2::text[]) AS u(c, z)
   WHERE s.chat_id = u.c AND s.time_zone IS DISTINCT FROM u.z`;

const OPT_SQL = `
  UPDATE broadcast_subscribers s SET opted_out = u.o, opted_out_at = u.a
    FROM unnest($1::bigint[], $2::boolean[], $3::timestamptz[]) AS u(c, o, a)
   WHERE s.chat_id = u.c AND s.opted_out IS DISTINCT FROM u.o`;

const REACHABLE_SQL = `
  UPDATE broadcast_subscribers s
     SET unreachable_reason = u.r, unreachable_at = CASE WHEN u.r IS NULL THEN NULL ELSE u.a END
    FROM unnest($1::bigint[], $2::text[], $3::timestamptz[]) AS u(c, r, a)
   WHERE s.chat_id = u.c AND s.unreachable_reason IS DISTINCT FROM u.r`;

const INSERT_EVENTS_SQL = `
  INSERT INTO broadcast_engagement (broadcast_id, chat_id, kind, link_index, at)
  SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::smallint[], $5::timestamptz[])`;

// The chat's sent rows of the last days are few and sit in broadcast_deliveries_recent_sent_idx
// (chat_id, sent_at), so matching a reply's message_id costs a handful of index entries.
const MESSAGE_EVENTS_SQL = `
  INSERT INTO broadcast_engagement (broadcast_id, chat_id, kind, at)
  SELECT d.broadcast_id, u.c, u.k, u.a
    FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::timestamptz[]) AS u(c, m, k, a)
    JOIN LATERAL (SELECT broadcast_id FROM broadcast_deliveries
                   WHERE chat_id = u.c AND status = 'sent' AND message_id = u.m
                     AND sent_at > u.a - interval '30 days'
                   LIMIT 1) d ON true`;

// Opt-outs and blocks within 72 h of receiving a broadcast are that broadcast's (the latest one).
export const ATTRIBUTION_WINDOW_HOURS = 72;
const LEAVE_EVENTS_SQL = `
  INSERT INTO broadcast_engagement (broadcast_id, chat_id, kind, at)
  SELECT d.broadcast_id, u.c, u.k, u.a
    FROM unnest($1::bigint[], $2::text[], $3::timestamptz[]) AS u(c, k, a)
    JOIN LATERAL (SELECT broadcast_id FROM broadcast_deliveries
                   WHERE chat_id = u.c AND status = 'sent'
                     AND sent_at BETWEEN u.a - make_interval(hours => ${ATTRIBUTION_WINDOW_HOURS}) AND u.a
                   ORDER BY sent_at DESC LIMIT 1) d ON true`;

/** Writes one flush of the subscriber capture: at most six statements, however many updates it holds. */
export async function writeCapture(pool: Pool, changes: SubscriberChange[], messages: MessageEvent[], leaves: LeaveEvent[], events: EngagementEvent[]): Promise<RefusedZone[]> {
  if (changes.length + messages.length + leaves.length + events.length === 0) return [];
  let refused: RefusedZone[] = [];
  await inTransaction(pool, async (client) => {
    // Opt and reachability changes need the row to exist, so every changed chat is upserted.
    if (changes.length) {
      await client.query(UPSERT_ACTIVE_SQL, [changes.map((c) => c.chatId), changes.map((c) => c.languageCode), changes.map((c) => c.activeAt)]);
      const zoned = changes.filter((c) => c.timeZone);
      if (zoned.length) refused = await writeTimeZones(client, zoned);
      const opts = changes.filter((c) => c.optedOut);
      if (opts.length) await client.query(OPT_SQL, [opts.map((c) => c.chatId), opts.map((c) => c.optedOut!.value), opts.map((c) => c.optedOut!.at)]);
      const reach = changes.filter((c) => c.unreachable);
      if (reach.length) await client.query(REACHABLE_SQL, [reach.map((c) => c.chatId), reach.map((c) => c.unreachable!.reason), reach.map((c) => c.unreachable!.at)]);
    }
    if (messages.length) await client.query(MESSAGE_EVENTS_SQL, [messages.map((m) => m.chatId), messages.map((m) => m.messageId), messages.map((m) => m.kind), messages.map((m) => m.at)]);
    if (leaves.length) await client.query(LEAVE_EVENTS_SQL, [leaves.map((l) => l.chatId), leaves.map((l) => l.kind), leaves.map((l) => l.at)]);
    if (events.length) await insertEvents(client, events);
  });
  return refused;
}

// 22023: AT TIME ZONE's 'time zone "X" not recognized', raised inside sql/0020's CHECK; 23514: the CHECK itself.
const REFUSED_ZONE = new Set(['22023', '23514']);

// Savepoints, so a zone the server does not know costs only that zone: the common case is one
// statement; only when it fails is each distinct zone written on its own.
async function writeTimeZones(client: PoolClient, zoned: SubscriberChange[]): Promise<RefusedZone[]> {
  const update = async (rows: SubscriberChange[]): Promise<string | null> => {
    await client.query('SAVEPOINT capture_zones');
    try {
      await client.query(TIME_ZONE_SQL, [rows.map((c) => c.chatId), rows.map((c) => c.timeZone)]);
      await client.query('RELEASE SAVEPOINT capture_zones');
      return null;
    } catch (error) {
      if (!REFUSED_ZONE.has((error as { code?: string }).code ?? '')) throw error;
      await client.query('ROLLBACK TO SAVEPOINT capture_zones');
      return (error as Error).message;
    }
  };
  if ((await update(zoned)) === null) return [];
  const refused: RefusedZone[] = [];
  for (const zone of new Set(zoned.map((c) => c.timeZone!))) {
    const rows = zoned.filter((c) => c.timeZone === zone);
    const error = await update(rows);
    if (error !== null) refused.push(...rows.map((c) => ({ chatId: c.chatId, timeZone: zone, error })));
  }
  return refused;
}

/** Events already tied to a broadcast (clicks and presses, from their tokens), in one statement. */
export async function insertEvents(db: Pick<Pool, 'query'>, events: EngagementEvent[]): Promise<void> {
  if (events.length === 0) return;
  await db.query(INSERT_EVENTS_SQL, [events.map((e) => e.broadcastId), events.map((e) => e.chatId), events.map((e) => e.kind), events.map((e) => e.linkIndex), events.map((e) => e.at)]);
}

/** What a tracked broadcast sends (its message, or each variant's), for the redirect listener; null if it is gone or not tracked. */
/** A tracked broadcast's messages (its message, or each variant's in order) and when it finished; null when it is not tracked or gone. */
export async function loadTrackedMessages(pool: Pool, broadcastId: number): Promise<{ messages: Record<string, unknown>[]; finishedAt: Date | null } | null> {
  const { rows } = await pool.query('SELECT message, variants, finished_at FROM broadcasts WHERE broadcast_id = $1 AND track', [broadcastId]);
  const r = rows[0];
  if (!r) return null;
  const messages = Array.isArray(r.variants) && r.variants.length ? r.variants.map((v: { message: Record<string, unknown> }) => v.message) : [r.message];
  return { messages, finishedAt: r.finished_at };
}
