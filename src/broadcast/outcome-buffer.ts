import type { EventEmitter } from 'node:events';
import type { Pool } from '../db/pool.js';
import { DriverLostError } from '../errors.js';
import { errorMessage, type Logger } from '../log.js';
import { cappedBackoffMs, sleep } from '../time.js';
import type { Driver } from './driver.js';
import { recordDeliveries, unansweredClaims, type DeliveryRecord, type DueDelivery } from './ledger.js';
import { deliveryOutcome } from './outcomes.js';

/**
 * A drain's outcomes waiting for the ledger: gathered as sends come back and written together, one
 * statement per flush, by the run that still drives the broadcast.
 */
export class OutcomeBuffer {
  private readonly pending: DeliveryRecord[] = [];
  private flushing: Promise<void> = Promise.resolve();
  /**
   * Rows claimed and not yet written, by the claim (DueDelivery.claim) they came from: the claims
   * this run heard of whose rows may still be 'sending' (releaseUnanswered). A claim leaves the
   * map once all its rows are written, so it holds a few claims however long the broadcast.
   */
  private readonly unwritten = new Map<string, number>();
  /** Set once a write found that another run drives the broadcast now. */
  lost: DriverLostError | null = null;

  constructor(
    private readonly pool: Pool,
    private readonly driver: Driver,
    private readonly events: EventEmitter,
    private readonly log: Logger,
  ) {}

  /** Rows a claim's answer brought: each is written here later, or handed back. */
  claimed(rows: DueDelivery[]): void {
    for (const d of rows) this.unwritten.set(d.claim, (this.unwritten.get(d.claim) ?? 0) + 1);
  }

  push(record: DeliveryRecord): void {
    this.pending.push(record);
  }

  /**
   * Rows not sent go back to pending with their attempt refunded. Due again at once, they keep
   * their place at the head of the ledger (next_attempt_at unchanged), ahead of rows never tried.
   */
  giveBack(rows: DueDelivery[], retryInMs: number): void {
    for (const d of rows) this.pending.push({ chatId: d.chatId, claim: d.claim, status: 'pending', outcome: null, retryInMs: retryInMs > 0 ? retryInMs : null, refund: true });
  }

  /** The last write of a run must land, or sent messages would later count as unknown. */
  async flushUntilWritten(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      await this.flush();
      if (this.pending.length === 0) return;
      if (this.lost) throw this.lost;
      if (attempt >= 20) throw new Error(`could not write ${this.pending.length} delivery outcomes; the rows stay 'sending'`);
      await sleep(cappedBackoffMs(attempt, 100, 5_000));
    }
  }

  /**
   * Gives back, unsent, the rows of claims whose answers never came: still 'sending' on a claim
   * this run did not hear of. Nothing was sent to them: only an answered claim's rows are sent.
   * Left 'sending', the next run would give them up as interrupted sends of unknown outcome. Call
   * with nothing of the run in flight and its outcomes written; rows of an answered claim not
   * written for any reason stay as they are. Where the database stays away, they are left to that
   * next run, as before.
   */
  async releaseUnanswered(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        const rows = await unansweredClaims(this.pool, this.driver, this.unwritten.keys());
        if (rows.length === 0) return;
        this.giveBack(rows, 0);
        await this.flushUntilWritten();
        this.log.warn({ broadcastId: this.driver.broadcastId, rows: rows.length }, 'recipients of a claim whose answer was lost go back to pending, unsent');
        return;
      } catch (error) {
        if (error instanceof DriverLostError || attempt >= 20) {
          this.log.warn({ err: errorMessage(error) }, "could not look for rows of a claim whose answer was lost; the next run counts any as 'unknown'");
          return;
        }
        await sleep(cappedBackoffMs(attempt, 100, 5_000));
      }
    }
  }

  private written(claim: string | undefined): void {
    if (claim === undefined) return;
    const left = (this.unwritten.get(claim) ?? 0) - 1;
    if (left > 0) this.unwritten.set(claim, left);
    else this.unwritten.delete(claim);
  }

  /** Writes the outcomes gathered so far; one statement per call. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      if (this.pending.length === 0) return;
      const batch = this.pending.splice(0, this.pending.length);
      try {
        await recordDeliveries(this.pool, this.driver, batch);
        for (const r of batch) this.written(r.claim);
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
