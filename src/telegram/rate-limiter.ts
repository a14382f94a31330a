import type { Pool } from '../db/pool.js';
import { HaltError } from '../errors.js';
import type { Logger } from '../log.js';
import { sleep as timerSleep, type Sleep } from '../time.js';
import { ClockOffset } from './clock-offset.js';
import { LocalWindow } from './local-window.js';
import {
  AHEAD_SQL, CATCH_UP_SQL, CLEAR_HALT_SQL, ENSURE_ROW_SQL, HALT_SQL, PACE_SQL, PAUSE_SQL, RELEASE_SQL, RESERVE_FOR_CHAT_SQL, RESERVE_SQL,
} from './rate-limit-sql.js';
import { SlotShare } from './slot-share.js';

/**
 * Spacing margin over 1/rate. Slots are spaced evenly, so rate + 1 sends span 1000 × margin ms and
 * a one-second window holds more than `rate` only if sends bunch by more than (margin − 1) × 1 s:
 * 60 ms here, whatever the rate. That slack is spent on a send started up to LATE_SLOT_MS after its
 * slot (10 ms), two daemons' clock-offset estimates (up to 5 ms each, see ClockOffset) and the trip to
 * Telegram's counter, which on a busy machine is the large part: with 2.5 % (25 ms) the chaos suite
 * saw 251 calls in one second at 250/s, even without added CPU pressure, because a process that
 * started a send waited its turn for a core before the request left, and the receiving side waited
 * for one before it counted it. 6 % leaves about 35 ms for that and uses 94.3 % of the budget; a
 * 429 costs every daemon retry_after seconds, far more than the 3.5 % given up.
 */
export const SPACING_MARGIN = 1.06;

/**
 * A send may start at most this long after its slot. A later one (the process stalled: GC, a busy
 * machine) would land among the slots after it, which the shared timeline gave to other sends —
 * other daemons' too, which the local guard cannot see — and a second would hold more than the
 * limit. It is part of SPACING_MARGIN's slack, the rest of which is left for the trip to the wire.
 * A caller whose slot is missed catches up instead (catchUp), or reserves a new one.
 */
export const LATE_SLOT_MS = 10;

/**
 * A broadcast reserves its next batch only once the shared timeline is reserved less than this far
 * ahead. At least the drain's PREPARE_AHEAD_MS, so that one broadcast alone never waits here.
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
  private readonly window = new LocalWindow();
  private localPausedUntil = 0;
  private ready: Promise<void> | null = null;
  private readonly clock = new ClockOffset();

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
    const first = this.clock.toLocal(row.first_slot_ms, sentAt, receivedAt, row.db_now_ms);
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
    const first = this.clock.toLocal(row.first_slot_ms, sentAt, receivedAt, row.db_now_ms);
    const slots = Array.from({ length: count }, (_v, i) => first + (i * spacingUs) / 1000);
    return { slots, startFrom: slots.map((slot, i) => (i < row.k ? first : slot)), reservedUntil: row.reserved_until };
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
      const at = Math.max(slot, this.window.localWindowStart(ratePerSecond));
      if (at <= now) {
        this.window.recordStart(now);
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
    if (now < this.localPausedUntil || this.window.localWindowStart(ratePerSecond) > now) return false;
    this.window.recordStart(now);
    return true;
  }

  get pausedUntil(): number {
    return this.localPausedUntil;
  }

  /** A 429: pauses every daemon's sending for `ms` (the row) and this one's at once (locally). */
  async pause(ms: number, reason: string): Promise<void> {
    this.localPausedUntil = Math.max(this.localPausedUntil, Date.now() + ms);
    await this.ensureRow();
    await this.pool.query(PAUSE_SQL, [this.botId, ms, reason]);
    this.log.warn({ pauseMs: ms, reason }, 'rate limited by Telegram; sending paused for every daemon');
  }

  /** A 401: nothing can be sent with this token until a person fixes it. */
  async halt(reason: string): Promise<void> {
    await this.ensureRow();
    await this.pool.query(HALT_SQL, [this.botId, reason]);
  }

  /** The token works again (getMe succeeded): lift the halt for every daemon. */
  async clearHalt(): Promise<void> {
    await this.ensureRow();
    await this.pool.query(CLEAR_HALT_SQL, [this.botId]);
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
    for (const row of rows) allowed.set(row.chat_id, { allowedAt: this.clock.toLocal(row.allowed_ms, sentAt, receivedAt, row.db_now_ms), reservedUntil: row.reserved_until });
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
      slot: row.first_slot_ms === null ? null : this.clock.toLocal(row.first_slot_ms, sentAt, receivedAt, row.db_now_ms),
      reservedUntil: row.reserved_until,
      chatAllowedAt: this.clock.toLocal(row.allowed_ms, sentAt, receivedAt, row.db_now_ms),
    };
  }

  private ensureRow(): Promise<void> {
    this.ready ??= this.pool
      .query(ENSURE_ROW_SQL, [this.botId])
      .then(() => undefined, (error) => {
        this.ready = null;
        throw error;
      });
    return this.ready;
  }
}
