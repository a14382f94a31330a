import type { EventEmitter } from 'node:events';
import type { Pool } from '../db/pool.js';
import { HaltError, PayloadError, PermanentError, SnoozeError, DriverLostError } from '../errors.js';
import { errorMessage, type Logger } from '../log.js';
import type { Job } from '../queue/claimer.js';
import type { HandlerContext } from '../queue/worker-pool.js';
import { parseMessage, type OutgoingMessage } from '../telegram/message.js';
import type { RateLimiter } from '../telegram/rate-limiter.js';
import type { TelegramSender } from '../telegram/sender.js';
import { Drain, type Personalize, type Stop } from './drain.js';
import { CONTENT_ERRORS_TO_STOP } from './outcomes.js';
import { FINAL_STATUSES, createInlineBroadcast, fanOut, loadBroadcast, validateContent, type BroadcastRow } from './fanout.js';
import { recoverInterrupted, takeOver, type Driver } from './driver.js';
import { countDeliveries, failBroadcast, finishBroadcast } from './finish.js';
import { skipRemaining } from './ledger.js';
import { parseAudience } from './audience.js';
import { parseDeliverAtLocal, parseTimeZone } from './local-time.js';
import { createBroadcast, markSending, type NewBroadcast } from './broadcasts-store.js';
import { abDecideInMs, decideAbTest, parseAbTest, type AbDecision, type AbTest } from './ab-test.js';

export interface EngineSettings {
  rateLimit: number;
  paidRateLimit: number;
  atLeastOnce: boolean;
  /** Enqueue a 'webhook' job when a broadcast finishes. */
  webhooks?: boolean;
  /** Rewrites each recipient's copy of a track: true broadcast (engagement/tracking.ts); without it such a broadcast fails. */
  tracking?: { personalizer(broadcastId: number, messages: Record<string, unknown>[]): (params: Record<string, unknown>, chatId: number) => Record<string, unknown> } | null;
}

/**
 * A paused broadcast's job sleeps this long at most. Resuming (or cancelling) makes it due at once
 * in the database (the _500_wake_on_resume and _400_paused_job_resumed triggers), and the sweep
 * finds it due should the NOTIFY be lost, so nothing needs to poll; this only bounds a resume the
 * triggers missed (one that bypassed them, or a race they do not close): a minute, not an hour.
 */
const PAUSED_RECHECK_MS = 60_000;
/** The snooze message of a paused broadcast's job (sql/0021's trigger keys on its reason code, 'paused'). */
const PAUSED = 'broadcast paused';
/** The snooze message of a broadcast whose next rows are not due yet (deliver_at_local). */
const NOT_DUE = 'broadcast waiting: no recipient due yet';

/**
 * The 'broadcast' job: fan the audience out into the ledger once, then drain the ledger through
 * the rate limiter, recording outcomes in batches, until every row is final.
 */
export class BroadcastEngine {
  constructor(
    private readonly pool: Pool,
    private readonly sender: TelegramSender,
    private readonly limiter: RateLimiter,
    private readonly settings: EngineSettings,
    private readonly events: EventEmitter,
  ) {}

  async run(job: Job, ctx: HandlerContext): Promise<unknown> {
    let broadcastId: number | null = null;
    const run: { driver: Driver | null } = { driver: null };
    try {
      broadcastId = await this.resolveBroadcastId(job);
      return await this.runBroadcast(job, broadcastId, ctx, run);
    } catch (error) {
      // Another run took the broadcast over (this one was rescued while alive): nothing of ours
      // may be written any more. Should the job still be ours, its next run ends cleanly.
      if (error instanceof DriverLostError) throw new SnoozeError(1_000, error.message, { reason: 'interrupted' });
      // The job's last attempt failed: close the broadcast too, so it does not stay 'sending'
      // with rows that nobody will ever send.
      const last = error instanceof PermanentError || (job.attempt >= job.maxAttempts && !(error instanceof SnoozeError) && !(error instanceof HaltError));
      if (run.driver && last) {
        await this.closeFailed(run.driver, errorMessage(error), ctx.log).catch((e) => ctx.log.warn({ err: errorMessage(e) }, 'could not close the failed broadcast'));
      }
      throw error;
    }
  }

  private async closeFailed(driver: Driver, reason: string, log: Logger): Promise<void> {
    const { broadcastId } = driver;
    const b = await loadBroadcast(this.pool, broadcastId);
    if (!b || FINAL_STATUSES.includes(b.status)) return;
    await recoverInterrupted(this.pool, driver, false);
    await skipRemaining(this.pool, driver, 'stopped');
    const counts = await countDeliveries(this.pool, broadcastId);
    await failBroadcast(this.pool, driver, reason, counts);
    log.warn({ broadcastId, reason, ...counts }, 'broadcast failed');
  }

  private async runBroadcast(job: Job, broadcastId: number, ctx: HandlerContext, run: { driver: Driver | null }): Promise<unknown> {
    const { signal, stopping, log } = ctx;
    const broadcast = await loadBroadcast(this.pool, broadcastId);
    if (!broadcast) throw new PayloadError(`payload.broadcast_id ${broadcastId} does not exist in broadcasts`);
    if (FINAL_STATUSES.includes(broadcast.status)) return { broadcast_id: broadcastId, status: broadcast.status, ...(await countDeliveries(this.pool, broadcastId)) };
    // One driver per broadcast, however its jobs were enqueued (sql/0005): a second job for a
    // broadcast that a live run drives ends here, without touching a row.
    const taken = await takeOver(this.pool, broadcastId, job.jobId, job.attempt);
    if ('heldBy' in taken) {
      log.info({ broadcastId, drivenBy: taken.heldBy }, 'broadcast already driven by another job; this one ends');
      return { broadcast_id: broadcastId, status: 'driven_by_another_job', driver_job_id: taken.heldBy };
    }
    const driver = (run.driver = taken.driver);
    // A broken message fails the job, and (as its driver) this run closes the broadcast.
    validateContent(broadcast);
    const ab = parseAbTest(broadcast.ab_test, broadcast, 'broadcast.ab_test');
    const messages = this.messagesOf(broadcast);
    const personal = this.personalizerOf(broadcast, messages);
    const recovered = await recoverInterrupted(this.pool, driver, this.settings.atLeastOnce);
    if (recovered) log.warn({ broadcastId, rows: recovered, atLeastOnce: this.settings.atLeastOnce }, 'recipients whose send a crash interrupted');
    const fanned = await fanOut(this.pool, broadcast, driver);
    if (fanned) {
      log.info({ broadcastId, ...fanned }, 'audience fanned out into the ledger');
      if (fanned.skipped) this.events.emit('delivery', { jobType: 'broadcast', outcome: 'skipped', count: fanned.skipped });
    }
    else await markSending(this.pool, broadcastId);

    const gate = ab ? await this.abGate(driver, ab, messages, log) : null;
    const rate = broadcast.allow_paid_broadcast ? this.settings.paidRateLimit : this.settings.rateLimit;
    const stop = await new Drain(this.pool, this.sender, this.limiter, driver, messages, rate, this.settings.atLeastOnce, signal, stopping, log, this.events, personal, job.priority, gate).run();
    return this.finish(driver, job.queue, stop, log);
  }

  /**
   * An A/B test's decision, run before each claim (Drain): from the moment (by the database's
   * clock, taken once per run) it decides, or reads the decision made, and the rest's rows
   * (variant NULL) are sent the chosen variant from then on. Until then the claim leaves them.
   */
  private async abGate(driver: Driver, ab: AbTest, messages: Map<string | null, OutgoingMessage>, log: Logger): Promise<() => Promise<void>> {
    const decideAt = Date.now() + (await abDecideInMs(this.pool, driver.broadcastId));
    let decided = false;
    let deciding: Promise<void> | null = null;
    const apply = (d: AbDecision) => {
      messages.set(null, messages.get(d.sentVariant)!);
      decided = true;
    };
    const decide = async () => {
      const result = await decideAbTest(this.pool, driver, ab);
      if (!result) return;
      apply(result.decision);
      if (!result.now) return;
      const { winner, pValue, sentVariant } = result.decision;
      const { metric } = ab;
      log.info({ broadcastId: driver.broadcastId, metric, winner, pValue, sentVariant, skipped: result.skipped }, winner ? 'A/B test decided: the rest get the winner' : 'A/B test decided: no variant won; the rest get the fallback');
      if (result.skipped) this.events.emit('delivery', { jobType: 'broadcast', outcome: 'skipped', count: result.skipped });
      this.events.emit('broadcast:ab-decided', { broadcastId: driver.broadcastId, metric, ...result.decision });
    };
    // A decision made by an earlier run is read at once; otherwise from a second before the
    // moment, so that a clock a little behind the database's does not leave the rest's rows
    // due and unclaimable for long.
    if (decideAt <= Date.now()) await decide();
    return async () => {
      if (decided || Date.now() < decideAt - 1_000) return;
      deciding ??= decide().finally(() => { deciding = null; });
      await deciding;
    };
  }

  private async resolveBroadcastId(job: Job): Promise<number> {
    const p = job.payload;
    if (p.broadcast_id !== undefined) {
      if (!Number.isSafeInteger(p.broadcast_id) || (p.broadcast_id as number) <= 0) throw new PayloadError(`payload.broadcast_id must be a positive integer, got ${JSON.stringify(p.broadcast_id)}`);
      return p.broadcast_id as number;
    }
    // Validate before creating anything, so a bad payload leaves no half-made broadcast behind.
    validateInlineBroadcast(p);
    return createInlineBroadcast(this.pool, job.jobId, p);
  }

  private messagesOf(b: BroadcastRow): Map<string | null, OutgoingMessage> {
    const messages = new Map<string | null, OutgoingMessage>();
    if (b.variants?.length) for (const v of b.variants) messages.set(v.name, withPaid(parseMessage(v.message), b.allow_paid_broadcast));
    else messages.set(null, withPaid(parseMessage(b.message), b.allow_paid_broadcast));
    return messages;
  }

  private personalizerOf(b: BroadcastRow, messages: Map<string | null, OutgoingMessage>): Personalize {
    if (!b.track) return null;
    if (!this.settings.tracking) throw new PayloadError('track: true needs tracked links set up: BQ_PUBLIC_URL and BQ_LINK_SECRET for the daemon, the tracking option for the library');
    const rewrite = this.settings.tracking.personalizer(b.broadcast_id, [...messages.values()].map((m) => m.params));
    return (message, chatId) => ({ method: message.method, params: rewrite(message.params, chatId) });
  }

  private async finish(driver: Driver, queue: string, stop: Stop | null, log: Logger): Promise<unknown> {
    const { broadcastId } = driver;
    if (stop?.kind === 'aborted') throw new SnoozeError(0, 'broadcast interrupted by shutdown; it resumes from the ledger', { reason: 'interrupted' });
    if (stop?.kind === 'halted') throw new HaltError(stop.reason, { reason: stop.code });
    if (stop?.kind === 'paused') throw new SnoozeError(PAUSED_RECHECK_MS, PAUSED, { reason: 'paused' });
    if (stop?.kind === 'waiting') {
      // The job sleeps until the earliest row is due instead of holding its worker for hours; the
      // next run takes the broadcast over again (one driver, sql/0005) and goes on from the ledger.
      log.info({ broadcastId, dueInMs: Math.round(stop.dueInMs) }, 'broadcast waiting for its next recipients\' time; the job sleeps until then');
      throw new SnoozeError(stop.dueInMs, NOT_DUE, { reason: 'not_due' });
    }
    if (stop?.kind === 'cancelled') await skipRemaining(this.pool, driver, 'cancelled');
    if (stop?.kind === 'content') await skipRemaining(this.pool, driver, 'stopped');
    const counts = await countDeliveries(this.pool, broadcastId);
    const status = stop?.kind === 'cancelled' ? 'cancelled' : stop?.kind === 'content' ? 'failed' : 'completed';
    const reason = stop?.kind === 'content' ? `stopped after ${CONTENT_ERRORS_TO_STOP} identical content errors: ${stop.reason}` : null;
    // Another run took the broadcast over: DriverLostError, nothing written and nothing logged here.
    await finishBroadcast(this.pool, driver, { status, reason, counts, queue, webhook: this.settings.webhooks === true });
    log.info({ broadcastId, status, ...counts }, 'broadcast finished');
    this.events.emit('broadcast:finished', { broadcastId, status, failureReason: reason, counts });
    if (reason) throw new PermanentError(`broadcast ${broadcastId} ${reason}`, { reason: 'content' });
    return { broadcast_id: broadcastId, status, ...counts };
  }
}

/** Checks an inline broadcast payload: something to send, and someone to send it to. */
export function validateInlineBroadcast(p: Record<string, unknown>): void {
  if (p.message === undefined && p.variants === undefined) throw new PayloadError('payload needs broadcast_id, or message (or variants) with chat_ids or audience');
  if (p.chat_ids === undefined && p.audience === undefined) throw new PayloadError('payload needs chat_ids or audience to say who receives the message');
  validateContent({ message: (p.message ?? null) as Record<string, unknown> | null, variants: (p.variants ?? null) as never }, 'payload');
  parseAudience(p.chat_ids !== undefined ? { ...(p.audience as object | undefined), chat_ids: p.chat_ids } : p.audience, p.chat_ids !== undefined ? 'payload' : 'payload.audience');
  if (p.frequency_cap !== undefined && (!Number.isInteger(p.frequency_cap) || (p.frequency_cap as number) < 1)) throw new PayloadError(`payload.frequency_cap must be a positive integer, got ${JSON.stringify(p.frequency_cap)}`);
  if (p.allow_paid_broadcast !== undefined && typeof p.allow_paid_broadcast !== 'boolean') throw new PayloadError('payload.allow_paid_broadcast must be true or false');
  if (p.track !== undefined && typeof p.track !== 'boolean') throw new PayloadError('payload.track must be true or false');
  parseDeliverAtLocal(p.deliver_at_local, 'payload.deliver_at_local');
  if (p.default_time_zone !== undefined && p.default_time_zone !== null) parseTimeZone(p.default_time_zone, 'payload.default_time_zone');
  parseAbTest(p.ab_test, p, 'payload.ab_test');
}

/**
 * Stores a broadcast from an inline spec (the payload's fields, plus title; no audience and no
 * chat_ids: every subscriber), checked as an inline broadcast is, so a bad spec stores nothing: a
 * draft, or with `send` queued with its keyed job.
 */
export async function createBroadcastFromSpec(pool: Pool, spec: Record<string, unknown>, send: NewBroadcast['send']): Promise<{ broadcast_id: number; status: string; job_id: number | null }> {
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) throw new PayloadError('createBroadcast needs a spec object: { title, message | variants, chat_ids | audience, … }');
  if (spec.title !== undefined && spec.title !== null && typeof spec.title !== 'string') throw new PayloadError(`title must be a string, got ${JSON.stringify(spec.title)}`);
  const withAudience = spec.chat_ids === undefined && spec.audience === undefined ? { ...spec, audience: {} } : spec;
  validateInlineBroadcast(withAudience);
  const p = withAudience as Record<string, any>;
  return createBroadcast(pool, {
    title: p.title ?? null, message: p.message, variants: p.variants,
    audience: p.chat_ids !== undefined ? { ...p.audience, chat_ids: p.chat_ids } : p.audience,
    frequencyCap: p.frequency_cap ?? null, allowPaidBroadcast: p.allow_paid_broadcast === true, deliverAtLocal: p.deliver_at_local ?? null,
    defaultTimeZone: p.default_time_zone ?? null, track: p.track === true, abTest: p.ab_test ?? null, send,
  });
}

function withPaid(message: OutgoingMessage, paid: boolean): OutgoingMessage {
  return paid ? { ...message, params: { ...message.params, allow_paid_broadcast: true } } : message;
}
