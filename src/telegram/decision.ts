// What a failed send leads to: the one decision table for a Telegram error class. The 'send' job
// (jobs/send-job.ts) and the broadcast engine (broadcast/engine.ts) both act on decide()'s answer;
// they differ only in how they carry it out (a job outcome, or a ledger row).
import type { ReasonCode } from '../errors.js';
import { mayHaveBeenDelivered, type DeliveryErrorClass } from './classify.js';

/**
 * - pause: 429. Pause the whole bot's budget for retry_after, then send again; no attempt spent.
 * - retry: 5xx and network errors. Send again after a backoff, spending an attempt.
 * - unknown: a retry whose call may have delivered the message; at-most-once does not send again.
 * - unreachable: 403 blocked/deactivated/kicked/chat deleted, 400 chat not found. Permanent for this
 *   recipient, who is marked unreachable and skipped by later broadcasts.
 * - follow: 400 with migrate_to_chat_id. Send to the new chat id and remember it.
 * - reject: 400 about the message itself. Permanent; a broadcast stops after a few identical ones.
 * - halt: 401. Stop all sending until the token is fixed; the job stays pending.
 * - fail: any other refusal. Permanent for this send.
 */
export type Decision =
  | { action: 'pause'; reason: ReasonCode; retryAfterMs: number }
  | { action: 'follow'; reason: ReasonCode; newChatId: number }
  | { action: 'retry' | 'unknown' | 'unreachable' | 'reject' | 'halt' | 'fail'; reason: ReasonCode };

export type Action = Decision['action'];

type Kind = DeliveryErrorClass['kind'];

/** Every class the classifier tells apart, with what it leads to (a missing one fails the build). */
export const DECISIONS: { readonly [K in Kind]: (c: Extract<DeliveryErrorClass, { kind: K }>) => Decision } = {
  rate_limited: (c) => ({ action: 'pause', reason: 'rate_limited', retryAfterMs: c.retryAfterMs }),
  transient: (c) => ({ action: 'retry', reason: transientReason(c.reason) }),
  recipient_gone: () => ({ action: 'unreachable', reason: 'blocked' }),
  chat_not_found: () => ({ action: 'unreachable', reason: 'chat_not_found' }),
  migrated: (c) => ({ action: 'follow', reason: 'migrated', newChatId: c.newChatId }),
  content: () => ({ action: 'reject', reason: 'content' }),
  unauthorized: () => ({ action: 'halt', reason: 'unauthorized' }),
  permanent: () => ({ action: 'fail', reason: 'bad_request' }),
};

/** A transient failure's reason: an answered 5xx, the call's deadline, or no answer at all. */
function transientReason(reason: string): ReasonCode {
  if (/^http_5\d\d$/.test(reason)) return 'server_error';
  if (reason === 'timeout') return 'timeout';
  return 'network';
}

/** What to do about a failed send, given the delivery setting. */
export function decide(c: DeliveryErrorClass, atLeastOnce: boolean): Decision {
  const decision = (DECISIONS[c.kind] as (c: DeliveryErrorClass) => Decision)(c);
  // A timeout or a reset may come after Telegram accepted the message: resending could deliver
  // it twice, so at-most-once gives up on it and says so.
  if (decision.action === 'retry' && !atLeastOnce && mayHaveBeenDelivered(c)) return { action: 'unknown', reason: 'outcome_unknown' };
  return decision;
}
