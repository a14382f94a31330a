import type { Pool } from '../db/pool.js';
import { HaltError } from '../errors.js';
import type { Logger } from '../log.js';
import { sleep as timerSleep, type Sleep } from '../time.js';
import { SlotShare } from './slot-share.js';

/**
 * Spacing margin over 1/rate. Slots are spaced evenly, so rate + 1 sends span 1000 × margin ms and
 * a one-second window holds more than `rate` only if sends bunch by more than (margin − 1) × 1 s:
 * 60 ms here, whatever the rate. That slack is spent on a send started up to LATE_SLOT_MS after its
 * slot (10 ms), two daemons' clock-offset estimates (up to 5 ms each, see toLocal) and the trip to
 * Telegram's counter, which on a busy machine is the large part: with 2.5 % (25 ms) the chaos suite
 * saw 251 calls in one second at 250/s, even without added CPU pressure, because a process that
 * started a send waited its turn for a core before the request left, and the receiving side waited
 * for one before it counted it. 6 % leaves about 35 ms for that and uses 94.3 % of the budget; a
 * 429 costs every daemon retry_after seconds, far more than the 3.5 % given up.
 */
export const SPACING_MARGIN = 1.06;

/**
 * The local guard's window: a little over a second, so that sends this process starts late (a GC
 * pause, a busy event loop) are spread out again instead of leaving in a burst. Evenly spaced
 * sends start 1060 ms apart per `rate` of them, so in steady state the guard never binds.
 */
const LOCAL_WINDOW_MS = 1_020;

/**
 * A send may start at most this long after its slot. A later one (the process stalled: GC, a busy
 * machine) would land among the slots after it, which the shared timeline gave to other sends —
 * other daemons' too, which the local guard cannot see — and a second would hold more than the
 * limit. It is part of SPACING_MARGIN's slack, the rest of which is left for the trip to the wire.
 * A caller whose slot is missed catches up instead (catchUp), or reserves a new one.
 */
export const LATE_SLOT_MS = 10;

/**
 * A clock-offset sample is trusted only from a round trip this short (or as short as the best one
 * seen): the estimate is the trip's midpoint, so a trip a stall stretched (the query's answer read
 * 300 ms late) moved every slot of the batch by half of that, onto other daemons' slots.
 */
const TRUSTED_ROUND_TRIP_MS = 10;
/** A trusted offset is replaced by a worse sample after this long: clocks drift, slowly. */
const OFFSET_MAX_AGE_MS = 60_000;

// Reserves `count` evenly spaced send times from the bot's shared timeline. The row lock
// serialises daemons, so their reservations never overlap; a 429 pause pushes the timeline out.
// Only while the timeline is reserved less than $4 ms ahead: no row when it is further.
//
// No send may start later than LATE_SLOT_MS after its slot. A per-send "late allowance" (sql/0019,
// now unused) let a process with late timers start up to 500 ms late, the timeline after it
// pushed back as much: with two daemons, one late and one not, their send jobs' reservations
// alternated and each pushed the timeline another allowance ahead, until slots were 2 s out and
// every send job waited for them (chaos load --stress, with no broadcast running); and allowance
// sends packed together could bunch past the limit. A late send catches up instead (catchUp).
const RESERVE_SQL = `
  WITH cur AS (
    SELECT GREATEST(next_slot_at, clock_timestamp(), COALESCE(paused_until, '-infinity')) AS first_slot,
           next_slot_at, clock_timestamp() AS now, halted_at IS NOT NULL AS halted, halt_reason
      FROM broadcast_rate_limits
     WHERE bot_id = $1 AND next_slot_at <= clock_timestamp() + $4::float8 * interval '1 millisecond'
       FOR UPDATE
  )
  UPDATE broadcast_rate_limits r
     SET next_slot_at = cur.first_slot + $2::float8 * $3::float8 * interval '1 microsecond', updated_at = now()
    FROM cur
   WHERE r.bot_id = $1
  RETURNING (extract(epoch FROM cur.first_slot) * 1000)::float8 AS first_slot_ms,
            r.next_slot_at::text AS reserved_until,
            (extract(epoch FROM cur.now) * 1000)::float8 AS db_now_ms,
            cur.halted, cur.halt_reason`;

// A caller whose slots were missed (it ran late) sends now instead, as far as the timeline allows.
// Its unused slots go back first ($5 of them at the end of the reservation that ended at $4, while
// nobody reserved after it). Then k of its $2 sends may leave at once: one if the timeline is free
// now, and k >= 2 only if it lay unused for k spacings before now; the other $2 - k get the evenly
// spaced slots that follow k spacings after now. A burst of k so flanked by 2k spacings holds no
// second to more than evenly spaced sends would (see catchUp). k = 0 when the timeline is reserved
// past now (other sends were reserved after the caller's): the $2 sends then get the slots at the
// timeline's end like RESERVE_SQL's, while it is reserved less than $6 ms ahead. Nothing is
// reserved while a pause or a halt is on.
const CATCH_UP_SQL = `
  WITH cur AS (
    SELECT CASE WHEN next_slot_at = $4::timestamptz THEN next_slot_at - $5::float8 * $3::float8 * interval '1 microsecond'
                ELSE next_slot_at END AS head,
           clock_timestamp() AS now,
           COALESCE(paused_until > clock_timestamp(), false) AS paused,
           (extract(epoch FROM paused_until - clock_timestamp()) * 1000)::float8 AS paused_ms,
           halted_at IS NOT NULL AS halted, halt_reason
      FROM broadcast_rate_limits WHERE bot_id = $1 FOR UPDATE
  ), take AS (
    SELECT CASE WHEN paused OR halted OR head > now THEN 0
                ELSE LEAST($2::int, GREATEST(1, floor((extract(epoch FROM now - head) * 1000000)::float8 / $3::float8)::int)) END AS k,
           CASE WHEN paused OR halted OR head > now + $6::float8 * interval '1 millisecond' THEN NULL
                ELSE GREATEST(head, now) END AS first_slot
      FROM cur
  )
  UPDATE broadcast_rate_limits r
     SET next_slot_at = COALESCE(take.first_slot + $2::float8 * $3::float8 * interval '1 microsecond', cur.head),
         updated_at = now()
    FROM cur, take
   WHERE r.bot_id = $1
  RETURNING take.k, (extract(epoch FROM take.first_slot) * 1000)::float8 AS first_slot_ms,
            (extract(epoch FROM cur.now) * 1000)::float8 AS db_now_ms, r.next_slot_at::text AS reserved_until,
            cur.paused, cur.paused_ms, cur.halted, cur.halt_reason`;

// How far ahead of now the timeline is already reserved, and whether sending is halted.
const AHEAD_SQL = `
  SELECT (extract(epoch FROM next_slot_at - clock_timestamp()) * 1000)::float8 AS ahead_ms,
         halted_at IS NOT NULL AS halted, halt_reason
    FROM broadcast_rate_limits WHERE bot_id = $1`;

// Per-chat pacing, cluster-wide: each chat has its own timeline with a fixed spacing.
const PACE_SQL = `
  INSERT INTO broadcast_chat_pacing AS p (bot_id, chat_id, next_allowed_at)
  SELECT $1, c, clock_timestamp() + $3::float8 * interval '1 millisecond' FROM unnest($2::bigint[]) AS c
  ON CONFLICT (bot_id, chat_id) DO UPDATE
     SET next_allowed_at = GREATEST(p.next_allowed_at, clock_timestamp()) + $3::float8 * interval '1 millisecond'
  RETURNING chat_id, extract(epoch FROM next_allowed_at) * 1000 - $3::float8 AS allowed_ms,
            next_allowed_at::text AS reserved_until,
            (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS db_now_ms`;

// Gives back chat reservations that were never used, each only while it is still the last one on
// its chat's timeline (nobody reserved after it): the timeline then ends where it began. The text
// form of a timestamptz round-trips to the microsecond, so equality is exact.
const RELEASE_SQL = `
  UPDATE broadcast_chat_pacing p
     SET next_allowed_at = p.next_allowed_at - $4::float8 * interval '1 millisecond'
    FROM unnest($2::bigint[], $3::timestamptz[]) AS r(chat_id, reserved_until)
   WHERE p.bot_id = $1 AND p.chat_id = r.chat_id AND p.next_allowed_at = r.reserved_until`;

// PACE_SQL and RESERVE_SQL for one chat and one slot, as one statement (one commit); without the
// slot when $5 is false (a broadcast of the caller's lends it one). While a 429
// pause (any daemon's) is on, nothing is reserved: the caller gets the pause's end instead and
// gives its worker slot back until then, rather than holding it through the pause.
const RESERVE_FOR_CHAT_SQL = `
  WITH state AS (
    SELECT paused_until > clock_timestamp() AS paused,
           -- float8: extract() gives numeric, which node-pg hands over as a string, and Date.now() + '993'
           -- is a string that parsed to a pause of 56,000 years (chaos telegram, every daemon stalled).
           (extract(epoch FROM paused_until - clock_timestamp()) * 1000)::float8 AS paused_ms,
           (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS db_now_ms,
           halted_at IS NOT NULL AS halted, halt_reason
      FROM broadcast_rate_limits WHERE bot_id = $1
  ), pace AS (
    INSERT INTO broadcast_chat_pacing AS p (bot_id, chat_id, next_allowed_at)
    SELECT $1, $3, clock_timestamp() + $4::float8 * interval '1 millisecond'
     WHERE NOT EXISTS (SELECT 1 FROM state WHERE paused OR halted)
    ON CONFLICT (bot_id, chat_id) DO UPDATE
       SET next_allowed_at = GREATEST(p.next_allowed_at, clock_timestamp()) + $4::float8 * interval '1 millisecond'
    RETURNING extract(epoch FROM next_allowed_at) * 1000 - $4::float8 AS allowed_ms
  ), cur AS (
    SELECT GREATEST(next_slot_at, clock_timestamp(), COALESCE(paused_until, '-infinity')) AS first_slot
      FROM broadcast_rate_limits WHERE bot_id = $1 AND $5::boolean AND NOT EXISTS (SELECT 1 FROM state WHERE paused OR halted)
       FOR UPDATE
  ), slot AS (
    UPDATE broadcast_rate_limits r
       SET next_slot_at = cur.first_slot + $2::float8 * interval '1 microsecond', updated_at = now()
      FROM cur
     WHERE r.bot_id = $1
    RETURNING (extract(epoch FROM cur.first_slot) * 1000)::float8 AS first_slot_ms, r.next_slot_at::text AS reserved_until
  )
  SELECT (SELECT allowed_ms FROM pace) AS allowed_ms, (SELECT first_slot_ms FROM slot) AS first_slot_ms,
         (SELECT reserved_until FROM slot) AS reserved_until, state.*
    FROM state`;

/**
 * A broadcast reserves its next batch only once the shared timeline is reserved less than this far
 * ahead. At least the engine's PREPARE_AHEAD_MS, so that one broadcast alone never waits here.
 */
const MAX_AHEAD_MS = 75;


/** About one message a second to a private chat. */
export const PRIVATE_CHAT_SPACING_MS = 1_000;
/** Telegram allows 20 messages a minute to a group: one every 3 s, plus margin. */
export const GROUP_CHAT_SPACING_MS = 3_050;

/** A chat's turn on its own timeline (paceChats). */
export interface ChatReservation {
  /** Local Date.now() milliseconds from which the chat may be sent to. */
  allowedAt: number;
  /** The chat timeline's end after this reservation, as PostgreSQL wrote it (releaseChats). */
  reservedUntil: string;
}

/** A send job's turn (reserveForChat): slot and reservedUntil are null when no global slot was asked for. */
export interface ChatTurn {
  slot: number | null;
  reservedUntil: string | null;
  chatAllowedAt: number;
}

export interface Reservation {
  /** Local Date.now() milliseconds at which each send may start, ascending. */
  slots: number[];
  /** The shared timeline's end after this reservation, as PostgreSQL wrote it (catchUp gives unused slots back). */
  reservedUntil: string;
}

/**
 * What catchUp gives: slots like a Reservation's, of which the first k may start at once, from
 * `startFrom` (still no later than their slot, as every send); or the pause that stops them all.
 */
export type CatchUp = { slots: number[]; startFrom: number[]; reservedUntil: string } | { pausedMs: number };

/**
 * The bot's send budget shared through PostgreSQL by every daemon: a global timeline of evenly
 * spaced send times (GCRA), a pause that a 429 imposes on everyone, a halt that a 401 imposes,
 * and per-chat timelines. Also keeps a local sliding window so that this process never bunches
 * late sends together.
 */
export class RateLimiter {
  /** Slots of this process's running broadcasts that its send jobs may take (see SlotShare). */
  readonly share = new SlotShare();
  private readonly recentStarts: number[] = [];
  private localPausedUntil = 0;
  private ready: Promise<void> | null = null;
  /** Local clock minus PostgreSQL's, from the shortest recent round trip (toLocal). */
  private offset: { ms: number; roundTripMs: number; at: number } | null = null;

  constructor(
    private readonly pool: Pool,
    readonly botId: number,
    private readonly log: Logger,
    /** How the send path waits (for slots, room on the timeline, pauses); a seam, see Sleep. */
    readonly sleep: Sleep = timerSleep,
  ) {}

  /**
   * Reserves `count` send times at `ratePerSecond` (a broadcast's batch). Throws HaltError while the
   * token is halted. Waits while the timeline is already reserved more than MAX_AHEAD_MS ahead:
   * a send job takes the slot at the end of the timeline, so every broadcast that reserved its next
   * batch long before it needed it made each transactional message wait that much longer.
   */
  async reserve(count: number, ratePerSecond: number, signal?: AbortSignal): Promise<Reservation> {
    await this.ensureRow();
    const spacingUs = (1_000_000 / ratePerSecond) * SPACING_MARGIN;
    let sentAt: number;
    let receivedAt: number;
    let row;
    for (;;) {
      sentAt = Date.now();
      const { rows } = await this.pool.query(RESERVE_SQL, [this.botId, count, spacingUs, MAX_AHEAD_MS]);
      receivedAt = Date.now();
      row = rows[0];
      if (row) break;
      await this.waitForRoom(signal);
    }
    if (row.halted) throw new HaltError(`sending is halted for this bot: ${row.halt_reason ?? 'the token was rejected (401)'}`);
    const first = this.toLocal(row.first_slot_ms, sentAt, receivedAt, row.db_now_ms);
    return { slots: Array.from({ length: count }, (_v, i) => first + (i * spacingUs) / 1000), reservedUntil: row.reserved_until };
  }

  /**
   * For a caller that missed its slots (its timer fired late, the process stalled): slots for
   * `count` sends, the first k of them now (all at once), the rest evenly spaced after; or, when
   * sends reserved after the caller's hold the timeline past now, the slots at its end (none when
   * that is more than MAX_AHEAD_MS ahead). `unused` slots at the end of `reservation` go back first.
   * Dropping late slots instead stopped sending altogether on a machine whose timers all fire
   * 100–500 ms late; sending them late would put them among slots given to other sends.
   *
   * Why a burst of k at once keeps every second within the limit: k >= 2 is granted only when the
   * timeline lay unused for k spacings before now, and the burst's own slots fill the k spacings
   * after it. A burst send starts between now and its slot (issuing k calls takes time too, and
   * the check against its slot is the usual LATE_SLOT_MS), so a second that holds part of the burst
   * holds at most as many sends as it would have with every send on its slot, give or take one
   * (checked in test/broadcast/late-timers.test.ts by counting arrivals).
   */
  async catchUp(count: number, ratePerSecond: number, reservation: { reservedUntil: string; unused: number } | null): Promise<CatchUp> {
    await this.ensureRow();
    const spacingUs = (1_000_000 / ratePerSecond) * SPACING_MARGIN;
    const sentAt = Date.now();
    const { rows } = await this.pool.query(CATCH_UP_SQL, [this.botId, count, spacingUs, reservation?.reservedUntil ?? null, reservation?.unused ?? 0, MAX_AHEAD_MS]);
    const receivedAt = Date.now();
    const row = rows[0];
    if (row.halted) throw new HaltError(`sending is halted for this bot: ${row.halt_reason ?? 'the token was rejected (401)'}`);
    if (row.paused) {
      this.localPausedUntil = Math.max(this.localPausedUntil, Date.now() + row.paused_ms);
      return { pausedMs: Math.max(0, row.paused_ms) };
    }
    if (row.first_slot_ms === null) return { slots: [], startFrom: [], reservedUntil: row.reserved_until };
    const first = this.toLocal(row.first_slot_ms, sentAt, receivedAt, row.db_now_ms);
    const slots = Array.from({ length: count }, (_v, i) => first + (i * spacingUs) / 1000);
    return { slots, startFrom: slots.map((slot, i) => (i < row.k ? first : slot)), reservedUntil: row.reserved_until };
  }

  /**
   * A PostgreSQL clock_timestamp() in local Date.now() milliseconds. The offset is the midpoint
   * estimate of a round trip short enough to trust (TRUSTED_ROUND_TRIP_MS, or no longer than the
   * best seen); a longer trip, which a stall may have stretched on either side, reuses it.
   */
  private toLocal(dbMs: number, sentAt: number, receivedAt: number, dbNowMs: number): number {
    const roundTripMs = receivedAt - sentAt;
    const best = this.offset;
    if (!best || roundTripMs <= Math.max(TRUSTED_ROUND_TRIP_MS, best.roundTripMs) || receivedAt - best.at > OFFSET_MAX_AGE_MS) {
      this.offset = { ms: (sentAt + receivedAt) / 2 - dbNowMs, roundTripMs, at: receivedAt };
    }
    return dbMs + this.offset!.ms;
  }

  /**
   * Waits until the shared timeline is reserved at most MAX_AHEAD_MS ahead (long, after another
   * daemon's 429 pushed it past the pause). A broadcast waits here before it claims ledger rows, so
   * no row sits 'sending' through the wait. Throws HaltError while the token is halted, and the
   * signal's reason once it aborts: a shutdown must not wait out a pause.
   */
  async waitForRoom(signal?: AbortSignal): Promise<void> {
    await this.ensureRow();
    for (;;) {
      signal?.throwIfAborted();
      const ahead = (await this.pool.query(AHEAD_SQL, [this.botId])).rows[0];
      if (ahead?.halted) throw new HaltError(`sending is halted for this bot: ${ahead.halt_reason ?? 'the token was rejected (401)'}`);
      const waitMs = Number(ahead?.ahead_ms ?? 0) - MAX_AHEAD_MS;
      if (waitMs <= 0) return;
      await this.sleep(waitMs, signal);
    }
  }

  /**
   * Waits until `slot`, then until this process has started fewer than `ratePerSecond` sends in
   * the last second, and records the start. Resolves false if a pause began meanwhile, or the
   * signal aborted (a shutdown does not wait for a slot).
   */
  async waitForSlot(slot: number, ratePerSecond: number, signal?: AbortSignal): Promise<boolean> {
    for (;;) {
      if (signal?.aborted) return false;
      const now = Date.now();
      if (now < this.localPausedUntil) return false;
      const at = Math.max(slot, this.localWindowStart(ratePerSecond));
      if (at <= now) {
        this.recordStart(now);
        return true;
      }
      await this.sleep(at - now, signal);
    }
  }

  /**
   * For a send whose start time has already come: records the start and says true, without any
   * wait, when no pause is on and the local guard allows it now; false otherwise (the caller then
   * waits in waitForSlot). On a starved event loop even a zero-length wait comes back late, so a
   * catch-up whose first send went through one missed it every time and never sent.
   */
  startNow(ratePerSecond: number): boolean {
    const now = Date.now();
    if (now < this.localPausedUntil || this.localWindowStart(ratePerSecond) > now) return false;
    this.recordStart(now);
    return true;
  }

  /** When this process may start its next send: once fewer than `rate` started in the last LOCAL_WINDOW_MS. */
  private localWindowStart(ratePerSecond: number): number {
    const limit = Math.max(1, Math.floor(ratePerSecond));
    return this.recentStarts.length >= limit ? this.recentStarts[this.recentStarts.length - limit]! + LOCAL_WINDOW_MS : 0;
  }

  private recordStart(at: number): void {
    this.recentStarts.push(at);
    if (this.recentStarts.length > 2_000) this.recentStarts.splice(0, this.recentStarts.length - 1_000);
  }

  get pausedUntil(): number {
    return this.localPausedUntil;
  }

  /** A 429: pauses every daemon's sending for `ms` (the row) and this one's at once (locally). */
  async pause(ms: number, reason: string): Promise<void> {
    this.localPausedUntil = Math.max(this.localPausedUntil, Date.now() + ms);
    await this.ensureRow();
    await this.pool.query(
      `UPDATE broadcast_rate_limits
          SET paused_until = GREATEST(COALESCE(paused_until, '-infinity'), now() + $2::float8 * interval '1 millisecond'),
              pause_reason = $3, updated_at = now()
        WHERE bot_id = $1`,
      [this.botId, ms, reason],
    );
    this.log.warn({ pauseMs: ms, reason }, 'rate limited by Telegram; sending paused for every daemon');
  }

  /** A 401: nothing can be sent with this token until a person fixes it. */
  async halt(reason: string): Promise<void> {
    await this.ensureRow();
    await this.pool.query(`UPDATE broadcast_rate_limits SET halted_at = now(), halt_reason = $2, updated_at = now() WHERE bot_id = $1`, [this.botId, reason]);
  }

  /** The token works again (getMe succeeded): lift the halt for every daemon. */
  async clearHalt(): Promise<void> {
    await this.ensureRow();
    await this.pool.query(`UPDATE broadcast_rate_limits SET halted_at = NULL, halt_reason = NULL, updated_at = now() WHERE bot_id = $1 AND halted_at IS NOT NULL`, [this.botId]);
  }

  /**
   * Reserves the next send time of each chat on its own timeline (cluster-wide) and returns, per
   * chat, the local time before which it must not be sent.
   */
  async paceChats(chatIds: number[], spacingMs: number): Promise<Map<number, ChatReservation>> {
    const allowed = new Map<number, ChatReservation>();
    if (chatIds.length === 0) return allowed;
    const sentAt = Date.now();
    const { rows } = await this.pool.query(PACE_SQL, [this.botId, chatIds, spacingMs]);
    const receivedAt = Date.now();
    for (const row of rows) allowed.set(row.chat_id, { allowedAt: this.toLocal(row.allowed_ms, sentAt, receivedAt, row.db_now_ms), reservedUntil: row.reserved_until });
    return allowed;
  }

  /**
   * Gives back chat reservations made by paceChats whose sends never went out. A reservation that
   * is no longer the last on its chat's timeline stays taken (its time simply goes unused).
   */
  async releaseChats(reservations: { chatId: number; reservedUntil: string }[], spacingMs: number): Promise<void> {
    if (reservations.length === 0) return;
    await this.pool.query(RELEASE_SQL, [this.botId, reservations.map((r) => r.chatId), reservations.map((r) => r.reservedUntil), spacingMs]);
  }

  /**
   * For one message to one chat (a 'send' job): the chat's next allowed time and one global slot,
   * in a single statement — one commit on the latency path instead of two. Without the global slot
   * (globalSlot false) when the caller will borrow one from a broadcast of its process (SlotShare).
   */
  async reserveForChat(chatId: number, spacingMs: number, ratePerSecond: number, globalSlot = true): Promise<ChatTurn | { pausedMs: number }> {
    await this.ensureRow();
    const spacingUs = (1_000_000 / ratePerSecond) * SPACING_MARGIN;
    const sentAt = Date.now();
    const { rows } = await this.pool.query(RESERVE_FOR_CHAT_SQL, [this.botId, spacingUs, chatId, spacingMs, globalSlot]);
    const row = rows[0];
    if (row.halted) throw new HaltError(`sending is halted for this bot: ${row.halt_reason ?? 'the token was rejected (401)'}`);
    if (row.paused) {
      // Another daemon's 429: this one learns of the pause here, and its broadcasts wait it out too.
      this.localPausedUntil = Math.max(this.localPausedUntil, Date.now() + row.paused_ms);
      return { pausedMs: Math.max(0, row.paused_ms) };
    }
    const receivedAt = Date.now();
    return {
      slot: row.first_slot_ms === null ? null : this.toLocal(row.first_slot_ms, sentAt, receivedAt, row.db_now_ms),
      reservedUntil: row.reserved_until,
      chatAllowedAt: this.toLocal(row.allowed_ms, sentAt, receivedAt, row.db_now_ms),
    };
  }

  private ensureRow(): Promise<void> {
    this.ready ??= this.pool
      .query('INSERT INTO broadcast_rate_limits (bot_id) VALUES ($1) ON CONFLICT (bot_id) DO NOTHING', [this.botId])
      .then(() => undefined, (error) => {
        this.ready = null;
        throw error;
      });
    return this.ready;
  }
}

export interface RateLimitState {
  botId: number;
  nextSlotAt: Date;
  pausedUntil: Date | null;
  pauseReason: string | null;
  haltedAt: Date | null;
  haltReason: string | null;
}

export async function readRateLimitState(pool: Pool): Promise<RateLimitState[]> {
  const { rows } = await pool.query('SELECT * FROM broadcast_rate_limits ORDER BY bot_id');
  return rows.map((r) => ({ botId: r.bot_id, nextSlotAt: r.next_slot_at, pausedUntil: r.paused_until, pauseReason: r.pause_reason, haltedAt: r.halted_at, haltReason: r.halt_reason }));
}
