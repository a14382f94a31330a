/**
 * Send times that a running broadcast lends to this process's send jobs. A send job that reserves
 * its own slot gets the one after every batch reserved so far: 75–175 ms ahead while broadcasts run
 * (MAX_AHEAD_MS plus a batch), a wait spent holding a worker. Under CPU pressure that wait was
 * most of what a send job cost, so two broadcasts left the workers too few turns for the clients'
 * send jobs, which queued for seconds (chaos load --stress: slot 95 ms ahead on average, each send
 * job holding its worker 130–300 ms). Instead a send job takes a slot of a broadcast's batch that
 * the broadcast has not reached yet; the broadcast skips it, and the row it meant for it comes back
 * in its next batch, in its place. Each slot is still used once, so the limit holds exactly.
 *
 * Only within one process (the slots live in the broadcast's memory), only at the same rate, and
 * only to a send job of at least the broadcast job's priority: a backlog of low-priority sends
 * must not starve a broadcast, only a transactional message may go first.
 */
export class SlotLender {
  /** Indices of `slots` that send jobs took. */
  readonly taken = new Set<number>();
  /** The index the broadcast is sending at (or waiting for); only later ones are lent. */
  next = 0;

  constructor(
    readonly slots: readonly number[],
    readonly rate: number,
    readonly priority: number,
  ) {}

  /** How many slots at the batch's end nobody used (given back to the timeline by a catch-up). */
  unusedAfter(index: number): number {
    let last = index;
    for (const i of this.taken) if (i >= last) last = i + 1;
    return this.slots.length - last;
  }
}

export class SlotShare {
  private readonly lenders = new Set<SlotLender>();

  /** A broadcast's batch, open for borrowing until withdrawn. */
  lend(slots: readonly number[], rate: number, priority: number): SlotLender {
    const lender = new SlotLender(slots, rate, priority);
    this.lenders.add(lender);
    return lender;
  }

  withdraw(lender: SlotLender | null): void {
    if (lender) this.lenders.delete(lender);
  }

  /** Whether a send at this rate and priority could borrow now (so it need not reserve a slot of its own). */
  lends(rate: number, priority: number): boolean {
    for (const l of this.lenders) if (l.rate === rate && l.priority <= priority) return true;
    return false;
  }

  /**
   * Takes the earliest slot not yet reached by a broadcast of this rate and of no higher priority,
   * and passed by no more than `lateMs` (a send may start that late, see LATE_SLOT_MS); null when
   * there is none (the caller reserves its own). A slot just passed is what a late wake needs: the
   * broadcast, late in the same event loop, has not reached it either, and the send leaves at once
   * instead of sleeping towards a later slot and missing that too.
   */
  borrow(rate: number, priority: number, now = Date.now(), lateMs = 0): number | null {
    let best: { lender: SlotLender; index: number } | null = null;
    for (const l of this.lenders) {
      if (l.rate !== rate || l.priority > priority) continue;
      for (let i = l.next + 1; i < l.slots.length; i++) {
        if (l.taken.has(i) || l.slots[i]! < now - lateMs) continue;
        if (!best || l.slots[i]! < best.lender.slots[best.index]!) best = { lender: l, index: i };
        break;
      }
    }
    if (!best) return null;
    best.lender.taken.add(best.index);
    return best.lender.slots[best.index]!;
  }
}
