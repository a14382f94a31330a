import type { EventEmitter } from 'node:events';
import type { Pool } from '../db/pool.js';
import type { ReasonCode } from '../errors.js';
import { errorMessage, type Logger } from '../log.js';
import { classifyTelegramError, describeClass, mayHaveBeenDelivered } from '../telegram/classify.js';
import { decide } from '../telegram/decision.js';
import type { RateLimiter } from '../telegram/rate-limiter.js';
import { countsAsBlocked, type DeliveryRecord, type DueDelivery } from './ledger.js';
import { markUnreachable, recordMigration } from './subscribers.js';

/** A recipient's transient failures (5xx, network) are retried 1, 2, 4, 8 s later, then failed. */
const RECIPIENT_RETRIES = 4;
/** Identical content errors after which the broadcast stops instead of burning every call. */
export const CONTENT_ERRORS_TO_STOP = 3;

/** What recordFailure needs of the run whose send failed (a Drain). */
export interface FailedSendRun {
  pool: Pool;
  limiter: RateLimiter;
  events: EventEmitter;
  log: Logger;
  atLeastOnce: boolean;
  /** The run's signal: aborted when our own shutdown cut the call short. */
  signal: AbortSignal;
  /** Queues a ledger record for the run's next write (OutcomeBuffer). */
  push(record: DeliveryRecord): void;
  giveBack(rows: DueDelivery[], retryInMs: number): void;
  /** Identical content errors so far, by the classifier's finer reason. */
  contentErrors: Map<string, number>;
  /** Ends the run with `stop`, unless it already ends with another. */
  stopWith(stop: { kind: 'halted'; reason: string; code: ReasonCode } | { kind: 'content'; reason: string }): void;
}

/** A failed send: what the decision table says becomes the ledger record, and what the run does next. */
export async function recordFailure(run: FailedSendRun, d: DueDelivery, error: unknown): Promise<void> {
  const c = classifyTelegramError(error);
  const decision = decide(c, run.atLeastOnce);
  const { reason } = decision;
  const base = { chatId: d.chatId, claim: d.claim, errorCode: c.code, errorDescription: c.description.slice(0, 500), errorReason: reason };
  run.log.debug({ chatId: d.chatId, attempt: d.attempt, error: describeClass(c), reason, description: c.description }, 'send failed');
  if ((decision.action === 'retry' || decision.action === 'unknown') && run.signal.aborted) {
    // Our own shutdown cut the call short. Never sent (it waited for a connection): it goes
    // back to the ledger. Otherwise whether it arrived is unknown, so the row stays
    // 'sending' and the next run counts it as unknown (or resends it, at-least-once).
    if (!mayHaveBeenDelivered(c)) run.giveBack([d], 0);
    return;
  }
  switch (decision.action) {
    case 'pause':
      run.push({ ...base, status: 'pending', outcome: null, retryInMs: decision.retryAfterMs, refund: true });
      run.events.emit('rate-limited', { retryAfterMs: decision.retryAfterMs });
      await run.limiter.pause(decision.retryAfterMs, c.description).catch((e) => run.log.warn({ err: errorMessage(e) }, 'could not share the pause'));
      return;
    case 'unknown':
      // At-most-once: the message may have arrived, so the row's outcome is unknown, not retried.
      run.push({ ...base, status: 'unknown', outcome: describeClass(c) });
      return;
    case 'retry':
      if (d.attempt <= RECIPIENT_RETRIES) run.push({ ...base, status: 'pending', outcome: null, retryInMs: 1000 * 2 ** (d.attempt - 1) });
      else run.push({ ...base, status: 'failed', outcome: 'retries_exhausted' });
      return;
    case 'follow':
      run.push({ ...base, status: 'pending', outcome: null, retryInMs: 0, migratedTo: decision.newChatId, refund: true });
      // The outcome is already queued; the subscriber row is bookkeeping, and a rejection here
      // would escape the call promise as an unhandled rejection.
      await recordMigration(run.pool, d.targetChatId, decision.newChatId).catch((e) => run.log.warn({ err: errorMessage(e) }, 'could not move the subscriber to its new chat id'));
      return;
    case 'unreachable': {
      const outcome = describeClass(c);
      run.push({ ...base, status: 'failed', outcome });
      await markUnreachable(run.pool, [{ chatId: d.targetChatId, reason: outcome }]).catch((e) => run.log.warn({ err: errorMessage(e) }, 'could not mark the subscriber unreachable'));
      return;
    }
    case 'halt':
      run.push({ ...base, status: 'pending', outcome: null, retryInMs: 0, refund: true });
      run.stopWith({ kind: 'halted', reason: 'Telegram rejected the bot token (401 Unauthorized); fix TELEGRAM_BOT_TOKEN', code: reason });
      await run.limiter.halt('401 Unauthorized').catch(() => undefined);
      return;
    case 'reject': {
      run.push({ ...base, status: 'failed', outcome: describeClass(c) });
      // Identical content errors are told apart by the classifier's finer reason.
      const key = c.kind === 'content' ? c.reason : describeClass(c);
      const seen = (run.contentErrors.get(key) ?? 0) + 1;
      run.contentErrors.set(key, seen);
      if (seen >= CONTENT_ERRORS_TO_STOP) run.stopWith({ kind: 'content', reason: c.description });
      return;
    }
    case 'fail':
      run.push({ ...base, status: 'failed', outcome: describeClass(c) });
      return;
  }
}

/** The label a recorded row gets in metrics: its final status, blocked apart, or 'retry'. */
export function deliveryOutcome(r: DeliveryRecord): string {
  if (r.status === 'pending') return r.refund ? 'deferred' : 'retry';
  if (countsAsBlocked(r)) return 'blocked';
  return r.status;
}
