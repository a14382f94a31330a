import { randomInt } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import { anySignal } from '../abort.js';
import type { Pool } from '../db/pool.js';
import { DriverLostError, HaltError, type ReasonCode } from '../errors.js';
import { errorMessage, type Logger } from '../log.js';
import type { OutgoingMessage } from '../telegram/message.js';
import { LATE_SLOT_MS, type RateLimiter } from '../telegram/rate-limiter.js';
import type { TelegramSender } from '../telegram/sender.js';
import type { Driver } from './driver.js';
import { claimDue, nextDueInMs, type DueDelivery } from './ledger.js';
import { broadcastStatus } from './broadcasts-store.js';
import { GroupTurns } from './group-turns.js';
import { OutcomeBuffer } from './outcome-buffer.js';
import { recordFailure, type FailedSendRun } from './outcomes.js';

/** Ledger outcomes are written at least this often, so a crash hides few results. */
const FLUSH_EVERY_MS = 100;
/** How often the broadcasts row is re-read for pause and cancel. */
const CONTROL_CHECK_MS = 500;
/** The next batch is claimed and reserved this long before the current one's last slot. */
const PREPARE_AHEAD_MS = 50;
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
  private readonly outcomes: OutcomeBuffer;
  /** The next batch, claimed and reserved ahead (PREPARE_AHEAD_MS). */
  private ahead: Promise<Batch> | null = null;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly contentErrors = new Map<string, number>();
  /** Set when the batch being sent had to catch up on missed slots (sendBatch). */
  private caughtUp = false;
  private readonly groupTurns: GroupTurns;
  private stop: Stop | null = null;
  private lastControlCheck = 0;
  private flushTimer: NodeJS.Timeout | undefined;
  /** What recordFailure sees of this run. */
  private readonly failedSendRun: FailedSendRun;
  /** Aborts when the run should stop starting calls: shutdown begun, or the job lost. */
  private readonly halting: AbortSignal;
  private readonly detachHalting: () => void;
  /** The tokens of this run's claims that failed: each may have committed with its answer lost. */
  private readonly failedClaims: number[] = [];

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
    this.outcomes = new OutcomeBuffer(pool, driver, events, log);
    this.groupTurns = new GroupTurns(limiter);
    this.failedSendRun = {
      pool, limiter, events, log, atLeastOnce, signal,
      push: (record) => this.outcomes.push(record),
      giveBack: (rows, retryInMs) => this.outcomes.giveBack(rows, retryInMs),
      contentErrors: this.contentErrors,
      stopWith: (stop) => {
        this.stop ??= stop;
      },
    };
  }

  async run(): Promise<Stop | null> {
    // About 100 ms of sends per batch: rows are marked 'sending' only just before their calls, and
    // a send job takes the slot after the batch reserved last. With 200 ms batches each send job
    // held its worker about a quarter of a second, and under --stress two broadcasts kept client
    // send jobs waiting p99 3.4 s to start (chaos load, seed 5101); with 100 ms, 0.9 s.
    const batchSize = Math.max(1, Math.ceil(this.rate / 10));
    this.flushTimer = setInterval(() => void this.outcomes.flush(), FLUSH_EVERY_MS);
    try {
      while (!this.stop) {
        if (this.outcomes.lost) throw this.outcomes.lost;
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
        if (unused) this.outcomes.giveBack(unused.due, 0);
      }
      // Also when the loop threw (a database blip): calls still in flight push their outcomes
      // afterwards, and left unwritten their rows would stay 'sending' and count as unknown.
      await Promise.allSettled([...this.inFlight]);
      clearInterval(this.flushTimer);
      this.detachHalting();
      await this.outcomes.flushUntilWritten();
      if (this.failedClaims.length) await this.outcomes.releaseUnanswered(this.failedClaims);
      // Turns held by rows this run will not send: the next run (or broadcast) may have them.
      await this.groupTurns.release().catch((e) => this.log.warn({ err: errorMessage(e) }, 'could not give back unused group turns'));
    }
    return this.stop;
  }

  /** Nothing due now: wait for the next retry time, or report that every row is final (or not due for long). */
  private async waitForMore(): Promise<boolean> {
    await this.outcomes.flush();
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
    // Random, so that no other claim's rows carry it (claim_token, sql/0026).
    const token = randomInt(1, 2 ** 48);
    let claiming = false;
    try {
      await this.beforeClaim?.();
      claiming = true;
      due = await claimDue(this.pool, this.driver, size, token);
    } catch (error) {
      if (error instanceof DriverLostError) return { due: [], slots: null, error };
      if (claiming) this.failedClaims.push(token);
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
      this.outcomes.giveBack(due, 0);
      if (error instanceof HaltError) this.stop = { kind: 'halted', reason: error.message, code: error.reason };
      else if (error instanceof DriverLostError) throw error;
      // A shutdown or a lost lease cut the wait short: the loop stops on its next turn.
      else if (!this.halting.aborted) throw error;
      return;
    }
    await this.groupTurns.paceGroups(due);
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
        const allowedAt = this.groupTurns.allowedAt(delivery.targetChatId);
        if (next < slots.length && allowedAt > slots[next]! + 50) {
          // The row keeps the group's turn it holds and comes back for it.
          this.outcomes.giveBack([delivery], allowedAt - Date.now());
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
          this.outcomes.giveBack(due.slice(i), Math.max(0, this.limiter.pausedUntil - Date.now()));
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
            this.outcomes.giveBack(due.slice(i), Math.max(0, this.limiter.pausedUntil - Date.now()));
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
          this.outcomes.giveBack(due.slice(i), 0);
          return;
        }
        unusedFrom = ++next;
        sentSinceCatchUp = true;
        this.groupTurns.use(delivery.targetChatId);
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

  private async sendOne(d: DueDelivery): Promise<void> {
    const shared = this.messages.get(d.variant) ?? this.messages.values().next().value!;
    const message = this.personal ? this.personal(shared, d.chatId) : shared;
    try {
      const sent = await this.sender.send(d.targetChatId, message, this.signal);
      this.outcomes.push({ chatId: d.chatId, claim: d.claim, status: 'sent', outcome: d.targetChatId !== d.chatId ? 'migrated' : null, messageId: sent.messageId });
    } catch (error) {
      await recordFailure(this.failedSendRun, d, error);
    }
  }
}
