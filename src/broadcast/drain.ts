import type { EventEmitter } from 'node:events';
import { anySignal } from '../abort.js';
import type { Pool } from '../db/pool.js';
import { DriverLostError, HaltError, type ReasonCode } from '../errors.js';
import { errorMessage, type Logger } from '../log.js';
import { cappedBackoffMs, sleep } from '../time.js';
import { classifyTelegramError, describeClass, mayHaveBeenDelivered } from '../telegram/classify.js';
import { decide } from '../telegram/decision.js';
import type { OutgoingMessage } from '../telegram/message.js';
import { GROUP_CHAT_SPACING_MS, LATE_SLOT_MS, type ChatReservation, type RateLimiter } from '../telegram/rate-limiter.js';
import type { TelegramSender } from '../telegram/sender.js';
import type { SlotLender } from '../telegram/slot-share.js';
import { BLOCKED_OUTCOMES, claimDue, nextDueInMs, recordDeliveries, type DeliveryRecord, type Driver, type DueDelivery } from './ledger.js';
import { markUnreachable, recordMigration } from './subscribers.js';
import { broadcastStatus } from './broadcasts-store.js';

/** A recipient's transient failures (5xx, network) are retried 1, 2, 4, 8 s later, then failed. */
const RECIPIENT_RETRIES = 4;
/** Identical content errors after which the broadcast stops instead of burning every call. */
export const CONTENT_ERRORS_TO_STOP = 3;
/** Ledger outcomes are written at least this often, so a crash hides few results. */
const FLUSH_EVERY_MS = 100;
/** How often the broadcasts row is re-read for pause and cancel. */
const CONTROL_CHECK_MS = 500;
/** The next batch is claimed and reserved this long before the current one's last slot. */
const PREPARE_AHEAD_MS = 50;
/**
 * How late a held group turn may still be used. Turns are GROUP_CHAT_SPACING_MS apart, so sends
 * within 500 ms of their turns (or 50 ms before) still put at most 20 in any minute.
 */
const GROUP_TURN_LATE_MS = 500;
/** Sends still awaiting Telegram's answer; a hung API cannot pile up more than this. */
const MAX_IN_FLIGHT = 256;
/**
 * Nothing due for longer than this: the run ends with a 'waiting' stop and the job sleeps until the
 * earliest row (a local-time broadcast waits hours for the next zone; its worker serves other
 * jobs meanwhile). Above the longest recipient retry (8 s), so retries still wait in the slot.
 */
const WAIT_IN_SLOT_MS = 10_000;

/** One recipient's copy of a message (tracked links), or null to send every recipient the same. */
export type Personalize = ((message: OutgoingMessage, chatId: number) => OutgoingMessage) | null;

/** Rows claimed together and the send times reserved for them (slots null: the reservation failed, see error). */
type Batch = { due: DueDelivery[]; slots: number[] | null; reservedUntil?: string; error?: unknown };
/** Send times in use: each send starts from startFrom[i], and no later than slots[i] + LATE_SLOT_MS. */
type Slots = { slots: number[]; startFrom: number[]; reservedUntil: string };

export type Stop = { kind: 'paused' } | { kind: 'cancelled' } | { kind: 'content'; reason: string } | { kind: 'halted'; reason: string; code: ReasonCode } | { kind: 'aborted' } | { kind: 'waiting'; dueInMs: number };

/**
 * One run over the ledger of one broadcast, the 'broadcast' job's pacing loop: claim due rows in
 * batches of about 100 ms of sends, reserve their send times, send, and write the outcomes every
 * FLUSH_EVERY_MS. It ends with a Stop (or null: every row final), which engine.ts turns into the
 * broadcast's state.
 */

export class Drain {
  private readonly pending: DeliveryRecord[] = [];
  /** The next batch, claimed and reserved ahead (PREPARE_AHEAD_MS). */
  private ahead: Promise<Batch> | null = null;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly contentErrors = new Map<string, number>();
  /** Set when the batch being sent had to catch up on missed slots (sendBatch). */
  private caughtUp = false;
  /** Group turns (paceGroups) reserved for rows not yet sent, by target chat. */
  private readonly groupTurns = new Map<number, ChatReservation>();
  private stop: Stop | null = null;
  /** Set once a write found that another run drives the broadcast now. */
  private lost: DriverLostError | null = null;
  private lastControlCheck = 0;
  private flushTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  /** Aborts when the run should stop starting calls: shutdown begun, or the job lost. */
  private readonly halting: AbortSignal;
  private readonly detachHalting: () => void;

  constructor(
    private readonly pool: Pool,
    private readonly sender: TelegramSender,
    private readonly limiter: RateLimiter,
    private readonly driver: Driver,
    private readonly messages: Map<string | null, OutgoingMessage>,
    private readonly rate: number,
    private readonly atLeastOnce: boolean,
    private readonly signal: AbortSignal,
    private readonly stopping: AbortSignal,
    private readonly log: Logger,
    private readonly events: EventEmitter,
    private readonly personal: Personalize = null,
    /** The broadcast job's priority: send jobs of at least this priority may take its slots (SlotShare). */
    private readonly priority = 0,
    /** Runs before each claim: an A/B test decides there, before the rows it holds can be claimed. */
    private readonly beforeClaim: (() => Promise<void>) | null = null,
  ) {
    const halting = anySignal(signal, stopping);
    this.halting = halting.signal;
    this.detachHalting = halting.done;
  }

  async run(): Promise<Stop | null> {
    // About 100 ms of sends per batch: rows are marked 'sending' only just before their calls, and
    // a send job takes the slot after the batch reserved last. With 200 ms batches each send job
    // held its worker about a quarter of a second, and under --stress two broadcasts kept client
    // send jobs waiting p99 3.4 s to start (chaos load, seed 5101); with 100 ms, 0.9 s.
    const batchSize = Math.max(1, Math.ceil(this.rate / 10));
    this.flushTimer = setInterval(() => void this.flush(), FLUSH_EVERY_MS);
    try {
      while (!this.stop) {
        if (this.lost) throw this.lost;
        if (this.stopping.aborted || this.signal.aborted) this.stop = { kind: 'aborted' };
        else await this.checkControl();
        if (this.stop) break;
        // While a 429 pauses this daemon, waitForSlot refuses every slot: claiming now would only
        // hand the rows back, and each turn would burn a batch of the shared timeline for nothing.
        const pausedMs = this.limiter.pausedUntil - Date.now();
        if (pausedMs > 0) {
          await this.limiter.sleep(Math.min(pausedMs, CONTROL_CHECK_MS), this.halting);
          continue;
        }
        const batch = this.ahead ? await this.ahead : await this.prepare(batchSize);
        this.ahead = null;
        if (batch.slots !== null && batch.due.length === 0) {
          if (this.inFlight.size) await Promise.race(this.inFlight);
          else if (!(await this.waitForMore())) break;
          continue;
        }
        // Claim and reserve the next batch while this one's last sends go out, so that its first
        // slot follows this one's last instead of a claim and a reservation later (each gap is
        // budget lost: 96 % of the limit at best without this, on a quiet machine).
        const lead = new AbortController();
        this.caughtUp = false;
        void this.limiter.sleep(Math.max(0, (batch.due.length / this.rate) * 1000 - PREPARE_AHEAD_MS), lead.signal).then(() => {
          // A batch that had to catch up runs late: a batch reserved after it now would take the
          // timeline's end from it, and its next catch-up could only hand its rows back.
          if (lead.signal.aborted || this.caughtUp) return;
          this.ahead = this.prepare(batchSize);
          this.ahead.catch(() => undefined); // awaited by the next turn, or the finally below
        });
        try {
          await this.sendBatch(batch);
        } finally {
          lead.abort();
        }
      }
      await Promise.all(this.inFlight);
    } finally {
      if (this.ahead) {
        const unused = await this.ahead.catch(() => null);
        this.ahead = null;
        if (unused) this.giveBack(unused.due, 0);
      }
      // Also when the loop threw (a database blip): calls still in flight push their outcomes
      // afterwards, and left unwritten their rows would stay 'sending' and count as unknown.
      await Promise.allSettled([...this.inFlight]);
      clearInterval(this.flushTimer);
      this.detachHalting();
      await this.flushUntilWritten();
      // Turns held by rows this run will not send: the next run (or broadcast) may have them.
      const unused = [...this.groupTurns].map(([chatId, turn]) => ({ chatId, reservedUntil: turn.reservedUntil }));
      await this.limiter.releaseChats(unused, GROUP_CHAT_SPACING_MS).catch((e) => this.log.warn({ err: errorMessage(e) }, 'could not give back unused group turns'));
    }
    return this.stop;
  }

  /** Nothing due now: wait for the next retry time, or report that every row is final (or not due for long). */
  private async waitForMore(): Promise<boolean> {
    await this.flush();
    const dueIn = await nextDueInMs(this.pool, this.driver.broadcastId);
    if (dueIn === null) return false;
    if (dueIn > WAIT_IN_SLOT_MS) {
      this.stop = { kind: 'waiting', dueInMs: dueIn };
      return false;
    }
    await this.limiter.sleep(Math.min(dueIn, CONTROL_CHECK_MS), this.stopping);
    return true;
  }

  private async checkControl(): Promise<void> {
    if (Date.now() - this.lastControlCheck < CONTROL_CHECK_MS) return;
    this.lastControlCheck = Date.now();
    const status = await broadcastStatus(this.pool, this.driver.broadcastId);
    if (status === 'paused') this.stop = { kind: 'paused' };
    else if (status === 'cancelled') this.stop = { kind: 'cancelled' };
  }

  /**
   * Claims up to `size` due rows and reserves their send times. The wait for room on the shared
   * timeline comes first, so that rows are marked 'sending' only once their sends are near.
   */
  private async prepare(size: number): Promise<Batch> {
    try {
      await this.limiter.waitForRoom(this.halting);
    } catch (error) {
      return { due: [], slots: null, error };
    }
    let due: DueDelivery[];
    try {
      await this.beforeClaim?.();
      due = await claimDue(this.pool, this.driver, size);
    } catch (error) {
      if (error instanceof DriverLostError) return { due: [], slots: null, error };
      throw error;
    }
    if (due.length === 0) return { due, slots: [] };
    try {
      const reservation = await this.limiter.reserve(due.length, this.rate, this.halting);
      return { due, slots: reservation.slots, reservedUntil: reservation.reservedUntil };
    } catch (error) {
      return { due, slots: null, error };
    }
  }

  private async sendBatch({ due, slots: reserved, reservedUntil, error }: Batch): Promise<void> {
    if (!reserved) {
      this.giveBack(due, 0);
      if (error instanceof HaltError) this.stop = { kind: 'halted', reason: error.message, code: error.reason };
      else if (error instanceof DriverLostError) throw error;
      // A shutdown or a lost lease cut the wait short: the loop stops on its next turn.
      else if (!this.halting.aborted) throw error;
      return;
    }
    await this.paceGroups(due);
    // The slots in use: the batch's own, or those of a catch-up once the process ran late.
    let reservation: Slots = { slots: reserved, startFrom: reserved, reservedUntil: reservedUntil! };
    // Slots this process's send jobs may take before the batch reaches them (SlotShare).
    let lender = this.limiter.share.lend(reserved, this.rate, this.priority);
    let next = 0; // the first slot not yet used or missed
    let unusedFrom = 0; // the slots from here on are unused: missed or still to come
    let sentSinceCatchUp = true;
    try {
      for (let i = 0; i < due.length; i++) {
        const delivery = due[i]!;
        const { slots } = reservation;
        while (lender.taken.has(next)) next++;
        lender.next = next;
        const allowedAt = delivery.targetChatId < 0 ? this.groupTurns.get(delivery.targetChatId)?.allowedAt ?? 0 : 0;
        if (next < slots.length && allowedAt > slots[next]! + 50) {
          // The row keeps the group's turn it holds and comes back for it.
          this.giveBack([delivery], allowedAt - Date.now());
          continue;
        }
        // Wait for room before the slot, not after it: a send that waits once its slot has come
        // leaves late, on top of the next daemon's sends.
        while (this.inFlight.size >= MAX_IN_FLIGHT) await Promise.race(this.inFlight);
        // After a content error, send one at a time until it is clear whether the message itself
        // is bad: a broken message should cost a few calls, not a whole batch.
        if (this.contentErrors.size > 0) await Promise.all(this.inFlight);
        const slot = await this.nextSlot(reservation, next);
        if (slot === 'stopped') {
          // A pause (429) or a stop began after the reservation: this call is not made.
          this.giveBack(due.slice(i), Math.max(0, this.limiter.pausedUntil - Date.now()));
          return;
        }
        if (slot === 'late') {
          // The process ran late (timers firing late, a stall): a missed slot used now would crowd
          // the sends reserved after it. While a later slot of the batch can still be kept, the
          // missed ones are skipped.
          const reachable = slots.findIndex((at, j) => j > next && !lender.taken.has(j) && at >= Date.now() - LATE_SLOT_MS);
          if (reachable > 0) {
            next = reachable;
            i--;
            continue;
          }
          // Every slot left is missed. Send what the timeline allows now and take fresh slots for
          // the rest: handing the rows back for new slots, which a machine whose timers all fire
          // late missed again, stopped sending altogether. Another catch-up only after a send.
          // The batch stops lending before its tail goes back to the timeline. Every slot left is
          // past by now, so none could be borrowed anyway; withdrawing first keeps that from
          // depending on `reachable` and SlotShare.borrow agreeing on what "past" means.
          const unused = lender.unusedAfter(unusedFrom);
          this.limiter.share.withdraw(lender);
          const caught = sentSinceCatchUp ? await this.catchUp(due.length - i, { reservedUntil: reservation.reservedUntil, unused }) : null;
          if (!caught || caught.slots.length === 0) {
            this.giveBack(due.slice(i), Math.max(0, this.limiter.pausedUntil - Date.now()));
            return;
          }
          reservation = caught;
          lender = this.limiter.share.lend(caught.slots, this.rate, this.priority);
          this.caughtUp = true;
          next = 0;
          unusedFrom = 0;
          sentSinceCatchUp = false;
          i--;
          continue;
        }
        if (slot === 'none') {
          this.giveBack(due.slice(i), 0);
          return;
        }
        unusedFrom = ++next;
        sentSinceCatchUp = true;
        this.groupTurns.delete(delivery.targetChatId);
        const call = this.sendOne(delivery).finally(() => this.inFlight.delete(call));
        this.inFlight.add(call);
      }
    } finally {
      this.limiter.share.withdraw(lender);
    }
  }

  /** Slots for the rows left, the first ones now (RateLimiter.catchUp); null when none may leave now or the ask failed. */
  private async catchUp(count: number, reservation: { reservedUntil: string; unused: number }): Promise<Slots | null> {
    try {
      const caught = await this.limiter.catchUp(count, this.rate, reservation);
      return 'pausedMs' in caught ? null : caught;
    } catch (error) {
      if (error instanceof HaltError) this.stop ??= { kind: 'halted', reason: error.message, code: error.reason };
      else this.log.warn({ err: errorMessage(error) }, 'could not catch up on missed send slots; the rows go back to the ledger');
      return null;
    }
  }

  /**
   * Groups take at most 20 messages a minute: each group row needs a turn on its group's own
   * timeline. A row that was handed back unsent (deferred to its turn, a dropped late slot, a 429)
   * still holds the turn it was given, and uses it when it comes back: reserving the group's next
   * turn instead pushed the row ~3 s later on every claim, forever (the demo stalled at 10,019 of
   * 10,020 that way). A held turn missed by more than GROUP_TURN_LATE_MS is given back to the group's
   * timeline, and a new one taken — at once, when nobody reserved after it.
   */
  private async paceGroups(due: DueDelivery[]): Promise<void> {
    const toPace: number[] = [];
    const stale: { chatId: number; reservedUntil: string }[] = [];
    for (const d of due) {
      if (d.targetChatId >= 0) continue;
      const held = this.groupTurns.get(d.targetChatId);
      if (held && held.allowedAt >= Date.now() - GROUP_TURN_LATE_MS) continue;
      if (held) stale.push({ chatId: d.targetChatId, reservedUntil: held.reservedUntil });
      toPace.push(d.targetChatId);
    }
    if (stale.length) await this.limiter.releaseChats(stale, GROUP_CHAT_SPACING_MS);
    for (const [chatId, turn] of await this.limiter.paceChats(toPace, GROUP_CHAT_SPACING_MS)) this.groupTurns.set(chatId, turn);
  }

  /**
   * Waits for the send time at `index` and says whether it was kept. 'late' when the slot was missed by more
   * than LATE_SLOT_MS (a GC pause, a starved CPU): the shared timeline gave the slots after it to
   * other sends, so sending late would put more than the limit into the next second.
   */
  private async nextSlot({ slots, startFrom }: Slots, index: number): Promise<'ok' | 'late' | 'none' | 'stopped'> {
    const slot = slots[index];
    if (slot === undefined) return 'none';
    if (slot < Date.now() - LATE_SLOT_MS) return 'late';
    if (this.stop || this.halting.aborted) return 'stopped';
    // A send whose start has come leaves without a wait: this is what makes a catch-up progress,
    // its first send starting now even when every wait of the process returns late.
    if (startFrom[index]! <= Date.now() && this.limiter.startNow(this.rate)) return 'ok';
    if (!(await this.limiter.waitForSlot(startFrom[index]!, this.rate, this.halting))) return 'stopped';
    return Date.now() - slot <= LATE_SLOT_MS ? 'ok' : 'late';
  }

  /**
   * Rows not sent go back to pending with their attempt refunded. Due again at once, they keep
   * their place at the head of the ledger (next_attempt_at unchanged), ahead of rows never tried.
   */
  private giveBack(rows: DueDelivery[], retryInMs: number): void {
    for (const d of rows) this.pending.push({ chatId: d.chatId, claim: d.claim, status: 'pending', outcome: null, retryInMs: retryInMs > 0 ? retryInMs : null, refund: true });
  }

  private async sendOne(d: DueDelivery): Promise<void> {
    const shared = this.messages.get(d.variant) ?? this.messages.values().next().value!;
    const message = this.personal ? this.personal(shared, d.chatId) : shared;
    try {
      const sent = await this.sender.send(d.targetChatId, message, this.signal);
      this.pending.push({ chatId: d.chatId, claim: d.claim, status: 'sent', outcome: d.targetChatId !== d.chatId ? 'migrated' : null, messageId: sent.messageId });
    } catch (error) {
      await this.recordFailure(d, error);
    }
  }

  private async recordFailure(d: DueDelivery, error: unknown): Promise<void> {
    const c = classifyTelegramError(error);
    const decision = decide(c, this.atLeastOnce);
    const { reason } = decision;
    const base = { chatId: d.chatId, claim: d.claim, errorCode: c.code, errorDescription: c.description.slice(0, 500), errorReason: reason };
    this.log.debug({ chatId: d.chatId, attempt: d.attempt, error: describeClass(c), reason, description: c.description }, 'send failed');
    if ((decision.action === 'retry' || decision.action === 'unknown') && this.signal.aborted) {
      // Our own shutdown cut the call short. Never sent (it waited for a connection): it goes
      // back to the ledger. Otherwise whether it arrived is unknown, so the row stays
      // 'sending' and the next run counts it as unknown (or resends it, at-least-once).
      if (!mayHaveBeenDelivered(c)) this.giveBack([d], 0);
      return;
    }
    switch (decision.action) {
      case 'pause':
        this.pending.push({ ...base, status: 'pending', outcome: null, retryInMs: decision.retryAfterMs, refund: true });
        this.events.emit('rate-limited', { retryAfterMs: decision.retryAfterMs });
        await this.limiter.pause(decision.retryAfterMs, c.description).catch((e) => this.log.warn({ err: errorMessage(e) }, 'could not share the pause'));
        return;
      case 'unknown':
        // At-most-once: the message may have arrived, so the row's outcome is unknown, not retried.
        this.pending.push({ ...base, status: 'unknown', outcome: describeClass(c) });
        return;
      case 'retry':
        if (d.attempt <= RECIPIENT_RETRIES) this.pending.push({ ...base, status: 'pending', outcome: null, retryInMs: 1000 * 2 ** (d.attempt - 1) });
        else this.pending.push({ ...base, status: 'failed', outcome: 'retries_exhausted' });
        return;
      case 'follow':
        this.pending.push({ ...base, status: 'pending', outcome: null, retryInMs: 0, migratedTo: decision.newChatId, refund: true });
        // The outcome is already queued; the subscriber row is bookkeeping, and a rejection here
        // would escape the call promise as an unhandled rejection.
        await recordMigration(this.pool, d.targetChatId, decision.newChatId).catch((e) => this.log.warn({ err: errorMessage(e) }, 'could not move the subscriber to its new chat id'));
        return;
      case 'unreachable': {
        const outcome = describeClass(c);
        this.pending.push({ ...base, status: 'failed', outcome });
        await markUnreachable(this.pool, [{ chatId: d.targetChatId, reason: outcome }]).catch((e) => this.log.warn({ err: errorMessage(e) }, 'could not mark the subscriber unreachable'));
        return;
      }
      case 'halt':
        this.pending.push({ ...base, status: 'pending', outcome: null, retryInMs: 0, refund: true });
        this.stop ??= { kind: 'halted', reason: 'Telegram rejected the bot token (401 Unauthorized); fix TELEGRAM_BOT_TOKEN', code: reason };
        await this.limiter.halt('401 Unauthorized').catch(() => undefined);
        return;
      case 'reject': {
        this.pending.push({ ...base, status: 'failed', outcome: describeClass(c) });
        // Identical content errors are told apart by the classifier's finer reason.
        const key = c.kind === 'content' ? c.reason : describeClass(c);
        const seen = (this.contentErrors.get(key) ?? 0) + 1;
        this.contentErrors.set(key, seen);
        if (seen >= CONTENT_ERRORS_TO_STOP) this.stop ??= { kind: 'content', reason: c.description };
        return;
      }
      case 'fail':
        this.pending.push({ ...base, status: 'failed', outcome: describeClass(c) });
        return;
    }
  }

  /** The last write of a run must land, or sent messages would later count as unknown. */
  private async flushUntilWritten(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      await this.flush();
      if (this.pending.length === 0) return;
      if (this.lost) throw this.lost;
      if (attempt >= 20) throw new Error(`could not write ${this.pending.length} delivery outcomes; the rows stay 'sending'`);
      await sleep(cappedBackoffMs(attempt, 100, 5_000));
    }
  }

  /** Writes the outcomes gathered so far; one statement per call. */
  private flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      if (this.pending.length === 0) return;
      const batch = this.pending.splice(0, this.pending.length);
      try {
        await recordDeliveries(this.pool, this.driver, batch);
        for (const r of batch) this.events.emit('delivery', { jobType: 'broadcast', outcome: deliveryOutcome(r), ...(r.errorReason ? { reason: r.errorReason } : {}) });
      } catch (error) {
        if (error instanceof DriverLostError) {
          // The rows belong to the run that took over; its recovery counted them as unknown.
          this.lost = error;
          this.log.warn({ err: error.message, rows: batch.length }, 'outcomes not written: another run drives this broadcast now');
          this.pending.length = 0;
          return;
        }
        // Put them back; the next flush retries. Until then the rows stay 'sending'.
        this.pending.unshift(...batch);
        this.log.warn({ err: errorMessage(error), rows: batch.length }, 'writing delivery outcomes failed; retrying');
      }
    });
    return this.flushing;
  }
}

/** The label a recorded row gets in metrics: its final status, blocked apart, or 'retry'. */
function deliveryOutcome(r: DeliveryRecord): string {
  if (r.status === 'pending') return r.refund ? 'deferred' : 'retry';
  if (r.status === 'failed' && (BLOCKED_OUTCOMES as readonly string[]).includes(r.outcome ?? '')) return 'blocked';
  return r.status;
}
