import { GROUP_CHAT_SPACING_MS, type ChatReservation, type RateLimiter } from '../telegram/rate-limiter.js';

/**
 * How late a held group turn may still be used. Turns are GROUP_CHAT_SPACING_MS apart, so sends
 * within 500 ms of their turns (or 50 ms before) still put at most 20 in any minute.
 */
const GROUP_TURN_LATE_MS = 500;

/** A drain's turns on its groups' own timelines (paceGroups), held by rows not yet sent, by target chat. */
export class GroupTurns {
  private readonly turns = new Map<number, ChatReservation>();

  constructor(private readonly limiter: RateLimiter) {}

  /** When the row's group may be sent to (local ms); 0 for a private chat or a group with no turn held. */
  allowedAt(targetChatId: number): number {
    return targetChatId < 0 ? this.turns.get(targetChatId)?.allowedAt ?? 0 : 0;
  }

  /** The row is being sent: its turn is used up. */
  use(targetChatId: number): void {
    this.turns.delete(targetChatId);
  }

  /**
   * Groups take at most 20 messages a minute: each group row needs a turn on its group's own
   * timeline. A row that was handed back unsent (deferred to its turn, a dropped late slot, a 429)
   * still holds the turn it was given, and uses it when it comes back: reserving the group's next
   * turn instead pushed the row ~3 s later on every claim, forever (the demo stalled at 10,019 of
   * 10,020 that way). A held turn missed by more than GROUP_TURN_LATE_MS is given back to the group's
   * timeline, and a new one taken — at once, when nobody reserved after it.
   */
  async paceGroups(due: { targetChatId: number }[]): Promise<void> {
    const toPace: number[] = [];
    const stale: { chatId: number; reservedUntil: string }[] = [];
    for (const d of due) {
      if (d.targetChatId >= 0) continue;
      const held = this.turns.get(d.targetChatId);
      if (held && held.allowedAt >= Date.now() - GROUP_TURN_LATE_MS) continue;
      if (held) stale.push({ chatId: d.targetChatId, reservedUntil: held.reservedUntil });
      toPace.push(d.targetChatId);
    }
    if (stale.length) await this.limiter.releaseChats(stale, GROUP_CHAT_SPACING_MS);
    for (const [chatId, turn] of await this.limiter.paceChats(toPace, GROUP_CHAT_SPACING_MS)) this.turns.set(chatId, turn);
  }

  /** Gives back the turns still held: rows this run will not send; the next run (or broadcast) may have them. */
  release(): Promise<void> {
    const unused = [...this.turns].map(([chatId, turn]) => ({ chatId, reservedUntil: turn.reservedUntil }));
    return this.limiter.releaseChats(unused, GROUP_CHAT_SPACING_MS);
  }
}
