import type { EventEmitter } from 'node:events';
import { anySignal } from '../abort.js';
import type { Pool } from '../db/pool.js';
import { HaltError, PayloadError, PermanentError, RetriableError, SnoozeError } from '../errors.js';
import type { Job } from '../queue/claimer.js';
import type { HandlerContext } from '../queue/worker-pool.js';
import { lastAttemptWasRescued } from '../queue/jobs-store.js';
import { markUnreachable, recordMigration } from '../broadcast/subscribers.js';
import { classifyTelegramError, describeClass } from '../telegram/classify.js';
import { decide, type Decision } from '../telegram/decision.js';
import { parseChatId, parseMessage } from '../telegram/message.js';
import { GROUP_CHAT_SPACING_MS, LATE_SLOT_MS, PRIVATE_CHAT_SPACING_MS, type RateLimiter } from '../telegram/rate-limiter.js';
import type { TelegramSender } from '../telegram/sender.js';

export interface SendJobSettings {
  rateLimit: number;
  paidRateLimit: number;
  atLeastOnce: boolean;
}

/** A borrowed slot's reservedUntil: it matches no end of the timeline, so a catch-up gives nothing back. */
const NOT_OURS = '-infinity';

/** Slots a send job may borrow from a running broadcast (SlotShare) before it reserves its own. */
const MAX_BORROWS = 3;

/** A chat that must wait longer than this is snoozed instead of holding a worker slot. */
const MAX_INLINE_WAIT_MS = 5_000;

/**
 * The 'send' job: one message to one chat, the low-latency path. It reserves one slot of the
 * shared budget (behind at most ~200 ms of broadcast reservations, so transactional messages go
 * ahead of a running broadcast) and one slot on the chat's own timeline.
 */
export class SendJob {
  constructor(
    private readonly pool: Pool,
    private readonly sender: TelegramSender,
    private readonly limiter: RateLimiter,
    private readonly settings: SendJobSettings,
    private readonly events: EventEmitter,
  ) {}

  async run(job: Job, ctx: HandlerContext): Promise<unknown> {
    const chatId = parseChatId(job.payload.chat_id, 'payload.chat_id');
    const message = parseMessage(job.payload.message, 'payload.message');
    const paid = job.payload.allow_paid_broadcast === true || message.params.allow_paid_broadcast === true;
    if (job.attempt > 1 && !this.settings.atLeastOnce && (await lastAttemptWasRescued(this.pool, job.jobId))) {
      throw new PermanentError(`outcome unknown: the daemon died during an earlier attempt and the message may have been sent; not resent in at-most-once mode (BQ_DELIVERY=at-least-once resends)`, { reason: 'outcome_unknown' });
    }
    let target = chatId;
    for (let hop = 0; ; hop++) {
      const rate = paid ? this.settings.paidRateLimit : this.settings.rateLimit;
      await this.waitForTurn(target, rate, job.priority, ctx);
      try {
        const sent = await this.sender.send(target, message, ctx.signal);
        this.events.emit('delivery', { jobType: 'send', outcome: 'sent' });
        return { chat_id: chatId, message_id: sent.messageId, ...(target !== chatId ? { migrated_to: target } : {}) };
      } catch (error) {
        const c = classifyTelegramError(error);
        const d = decide(c, this.settings.atLeastOnce);
        const { reason } = d;
        this.events.emit('delivery', { jobType: 'send', outcome: deliveryOutcome(d), reason });
        switch (d.action) {
          case 'pause':
            this.events.emit('rate-limited', { retryAfterMs: d.retryAfterMs });
            await this.limiter.pause(d.retryAfterMs, c.description);
            throw new SnoozeError(d.retryAfterMs, c.description, { reason });
          case 'follow':
            await recordMigration(this.pool, target, d.newChatId);
            if (hop >= 2) throw new PermanentError(`chat ${chatId} keeps migrating; last to ${d.newChatId}`, { reason });
            target = d.newChatId;
            continue;
          case 'unreachable':
            await markUnreachable(this.pool, [{ chatId: target, reason: describeClass(c) }]);
            throw new PermanentError(`${describeClass(c)}: ${c.description}`, { reason });
          case 'halt':
            await this.limiter.halt('401 Unauthorized');
            throw new HaltError('Telegram rejected the bot token (401 Unauthorized); fix TELEGRAM_BOT_TOKEN', { reason });
          case 'unknown':
            throw new PermanentError(`outcome unknown (${describeClass(c)}): the message may have been delivered; not resent in at-most-once mode (BQ_DELIVERY=at-least-once resends)`, { reason });
          case 'retry':
            throw new RetriableError(`${describeClass(c)}: ${c.description}`, { reason });
          case 'reject':
            throw new PayloadError(`Telegram refused the message: ${c.description}`, { reason });
          case 'fail':
            throw new PermanentError(c.description, { reason });
        }
        const unhandled: never = d;
        throw new Error(`no action for ${JSON.stringify(unhandled)}`);
      }
    }
  }

  /**
   * Reserves this message's turn (the chat's and the bot's) and waits for it. A 429 pause — this
   * daemon's or another's, seen in the shared row — gives the worker slot back at once (a snooze
   * until the pause ends, no attempt spent) instead of sleeping through retry_after in it, which
   * starved every other job type and made stop() wait the pause out. So does a shutdown: nothing
   * was sent yet, so the job simply runs again elsewhere.
   */
  private async waitForTurn(target: number, rate: number, priority: number, ctx: HandlerContext): Promise<void> {
    const waiting = anySignal(ctx.signal, ctx.stopping);
    const pausedFor = (ms: number) => new SnoozeError(Math.max(0, ms), 'sending is paused after a 429', { reason: 'rate_limited' });
    const paused = () => pausedFor(this.limiter.pausedUntil - Date.now());
    try {
      // A broadcast this process runs lends a slot of its batch (SlotShare), so only the chat's
      // own turn is reserved here; else one global slot too, behind every batch reserved so far.
      const borrowing = this.limiter.share.lends(rate, priority);
      const turn = await this.limiter.reserveForChat(target, target < 0 ? GROUP_CHAT_SPACING_MS : PRIVATE_CHAT_SPACING_MS, rate, !borrowing);
      if ('pausedMs' in turn) throw pausedFor(turn.pausedMs);
      const chatWait = turn.chatAllowedAt - Date.now();
      if (chatWait > MAX_INLINE_WAIT_MS) throw new SnoozeError(chatWait, `chat ${target} is pacing (about one message a second, 20 a minute to groups)`, { reason: 'rate_limited' });
      // unused: what a catch-up may give back to the timeline (a borrowed slot is the broadcast's).
      type Slot = { at: number; reservedUntil: string; unused: number };
      // A process whose timers ran 10-40 ms late missed one lent future slot after another, each a
      // slot the broadcast skipped for nothing (one job borrowed 1,612 in 43 s in review). A late
      // wake now takes a slot just passed and leaves at once; past MAX_BORROWS the job stops
      // borrowing and its own reservations catch up.
      let borrows = 0;
      const borrowed = (): Slot | null => {
        if (borrows >= MAX_BORROWS) return null;
        const at = this.limiter.share.borrow(rate, priority, Date.now(), LATE_SLOT_MS);
        if (at !== null) borrows++;
        return at === null ? null : { at, reservedUntil: NOT_OURS, unused: 0 };
      };
      const reserveOne = async (): Promise<Slot> => {
        const r = await this.limiter.reserve(1, rate, waiting.signal);
        // The slot comes after a pause another daemon's 429 began (RESERVE_SQL starts after it):
        // the worker is given back until then rather than held through it.
        const waitMs = r.slots[0]! - Date.now();
        if (waitMs > MAX_INLINE_WAIT_MS) throw pausedFor(waitMs);
        return { at: r.slots[0]!, reservedUntil: r.reservedUntil, unused: 1 };
      };
      let slot: Slot;
      if (turn.slot !== null && turn.chatAllowedAt <= turn.slot) slot = { at: turn.slot, reservedUntil: turn.reservedUntil!, unused: 1 };
      else {
        // No global slot yet (one is to be borrowed), or the chat's turn comes after it, when it
        // belongs to others' sends: wait for the chat, then take a global slot of that moment.
        if (turn.chatAllowedAt > Date.now()) await this.limiter.sleep(turn.chatAllowedAt - Date.now(), waiting.signal);
        waiting.signal.throwIfAborted();
        slot = borrowed() ?? (await reserveOne());
      }
      for (;;) {
        // A slot already come is taken without a wait (see RateLimiter.startNow).
        if (!waiting.signal.aborted && slot.at <= Date.now() && slot.at >= Date.now() - LATE_SLOT_MS && this.limiter.startNow(rate)) return;
        if (!(await this.limiter.waitForSlot(slot.at, rate, waiting.signal))) {
          if (waiting.signal.aborted) break;
          throw paused();
        }
        if (Date.now() - slot.at <= LATE_SLOT_MS) return;
        // The process ran late past the slot: sending now would crowd the slots after it. Send now
        // if the timeline allows it (catchUp); a new slot instead would be missed the same way
        // on a machine whose timers all fire late, and the message would never leave. A borrowed
        // slot missed is followed by the lender's next one, which it has not reached either: the
        // broadcast runs late in the same event loop.
        const lent: Slot | null = slot.unused === 0 ? borrowed() : null;
        if (lent) {
          slot = lent;
          continue;
        }
        const caught = await this.limiter.catchUp(1, rate, { reservedUntil: slot.reservedUntil, unused: slot.unused });
        if ('pausedMs' in caught) throw pausedFor(caught.pausedMs);
        slot = caught.slots.length ? { at: caught.slots[0]!, reservedUntil: caught.reservedUntil, unused: 1 } : borrowed() ?? (await reserveOne());
      }
    } catch (error) {
      if (!waiting.signal.aborted) throw error;
    } finally {
      waiting.done();
    }
    // Only the abort gets here: the shutdown (or a lost job) came before the call.
    throw new SnoozeError(0, 'interrupted by shutdown before the message was sent', { reason: 'interrupted' });
  }
}

/** The 'delivery' event's outcome label (metrics' deliveries_total) for a failed send. */
function deliveryOutcome({ action, reason }: Decision): string {
  if (action === 'unreachable' && reason === 'blocked') return 'blocked';
  if (action === 'pause' || action === 'follow') return 'deferred';
  if (action === 'retry' || action === 'unknown') return 'retry';
  return 'failed';
}
