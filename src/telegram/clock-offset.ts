/**
 * A clock-offset sample is trusted only from a round trip this short (or as short as the best one
 * seen): the estimate is the trip's midpoint, so a trip a stall stretched (the query's answer read
 * 300 ms late) moved every slot of the batch by half of that, onto other daemons' slots.
 */
const TRUSTED_ROUND_TRIP_MS = 10;
/** A trusted offset is replaced by a worse sample after this long: clocks drift, slowly. */
const OFFSET_MAX_AGE_MS = 60_000;

/** Local clock minus PostgreSQL's, from the shortest recent round trip (toLocal). */
export class ClockOffset {
  private offset: { ms: number; roundTripMs: number; at: number } | null = null;

  /**
   * A PostgreSQL clock_timestamp() in local Date.now() milliseconds. The offset is the midpoint
   * estimate of a round trip short enough to trust (TRUSTED_ROUND_TRIP_MS, or no longer than the
   * best seen); a longer trip, which a stall may have stretched on either side, reuses it.
   */
  toLocal(dbMs: number, sentAt: number, receivedAt: number, dbNowMs: number): number {
    const roundTripMs = receivedAt - sentAt;
    const best = this.offset;
    if (!best || roundTripMs <= Math.max(TRUSTED_ROUND_TRIP_MS, best.roundTripMs) || receivedAt - best.at > OFFSET_MAX_AGE_MS) {
      this.offset = { ms: (sentAt + receivedAt) / 2 - dbNowMs, roundTripMs, at: receivedAt };
    }
    return dbMs + this.offset!.ms;
  }
}
