import type { EventEmitter } from 'node:events';
import type { Pool } from '../db/pool.js';
import { DriverLostError } from '../errors.js';
import { errorMessage, type Logger } from '../log.js';
import { cappedBackoffMs, sleep } from '../time.js';
import type { Driver } from './driver.js';
import { recordDeliveries, unansweredClaims, type DeliveryRecord, type DueDelivery } from './ledger.js';
import { deliveryOutcome } from './outcomes.js';

/**
 * Tries to find a lost claim's rows before leaving them to the next run: ~13 s of waits, through
 * a quick restart of the server; a long outage is not waited out in the worker slot.
 */
const RELEASE_TRIES = 10;

/**
 * A drain's outcomes waiting for the ledger: gathered as sends come back and written together, one
 * statement per flush, by the run that still drives the broadcast.
 */
export class OutcomeBuffer {
  private readonly pending: DeliveryRecord[] = [];
  private flushing: Promise<void> = Promise.resolve();
  /** Set once a write found that another run drives the broadcast now. */
  lost: DriverLostError | null = null;

  constructor(
    private readonly pool: Pool,
    private readonly driver: Driver,
    private readonly events: EventEmitter,
    private readonly log: Logger,
  ) {}

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
   * Gives back, unsent, the rows of this run's claims that failed (`tokens`: what each wrote in
   * claim_token): one that committed before its connection died left its rows 'sending', and the
   * next run would give them up as sends of unknown outcome although nothing was sent to them.
   * Call once the run has nothing in flight. Where the database stays away (RELEASE_TRIES),
   * they are left to that next run, as before.
   */
  async releaseUnanswered(tokens: number[]): Promise<void> {
    let rows: DueDelivery[] = [];
    for (let attempt = 1; ; attempt++) {
      try {
        rows = await unansweredClaims(this.pool, this.driver, tokens);
        break;
      } catch (error) {
        if (error instanceof DriverLostError || attempt >= RELEASE_TRIES) {
          this.log.warn({ err: errorMessage(error) }, "could not look for the rows of a claim whose answer was lost; the next run counts any as 'unknown'");
          return;
        }
        await sleep(cappedBackoffMs(attempt, 100, 2_000));
      }
    }
    if (rows.length === 0) return;
    this.giveBack(rows, 0);
    try {
      await this.flushUntilWritten();
      this.log.warn({ broadcastId: this.driver.broadcastId, rows: rows.length }, 'recipients of a claim whose answer was lost go back to pending, unsent');
    } catch (error) {
      this.log.warn({ err: errorMessage(error), rows: rows.length }, "could not give back the rows of a claim whose answer was lost; the next run counts them as 'unknown'");
    }
  }

  /** Writes the outcomes gathered so far; one statement per call. */
  flush(): Promise<void> {
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
