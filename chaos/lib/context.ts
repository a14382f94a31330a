// What every scenario receives: the run's options, the PostgreSQL servers, the Bot API stand-in
// and a progress printer.
import type { FakeBotApiOptions, CallRecord } from '../../src/testing/index.js';
import { StandIn } from './stand-in.js';
import type { PgServer } from './cluster.js';

export const CHAOS_TOKEN = '123456:CHAOS-token-abcdefghijklmnopqrstuvw';

export interface ChaosContext {
  quick: boolean;
  soakMinutes: number;
  seed: number;
  workDir: string;
  logDir: string;
  /** The embedded server the run started (started on first use): the one that can be restarted. */
  embedded(): Promise<PgServer>;
  /** Where scenarios that leave PostgreSQL alone run: DATABASE_URL's server if given, else the embedded one. */
  server(): Promise<PgServer>;
  say(text: string): void;
}

/** The Bot API stand-in, in a process of its own (stand-in.ts); its records are mirrored here. */
export function startStandIn(options: FakeBotApiOptions = {}): Promise<{ api: StandIn; apiRoot: string }> {
  return StandIn.start({ token: CHAOS_TOKEN, ...options });
}

/** Deliveries per chat, from the stand-in's own record of what it accepted. */
export function deliveriesByChat(api: StandIn): Map<number, number> {
  const counts = new Map<number, number>();
  for (const d of api.delivered) counts.set(Number(d.chatId), (counts.get(Number(d.chatId)) ?? 0) + 1);
  return counts;
}

/** Chats that received more than one message (each scenario sends each chat at most one). */
export function duplicateChats(api: StandIn): number[] {
  return [...deliveriesByChat(api)].filter(([, n]) => n > 1).map(([chat]) => chat);
}

/**
 * The largest number of calls that arrived within any 1 s window, leaving out the storms (and the
 * second after each, whose answers are 429s by design): intervals in performance.now() time.
 */
export function maxCallsOutside(calls: CallRecord[], storms: [number, number][], windowMs = 1000): number {
  const inStorm = (t: number) => storms.some(([s, e]) => t >= s && t < e + windowMs);
  const times = calls.map((c) => c.at).filter((t) => !inStorm(t)).sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; j < times.length; j++) {
    while (times[j]! - times[i]! >= windowMs) i++;
    // A window must not straddle a storm: calls on both sides of one are not in the same second.
    const straddles = storms.some(([s]) => times[i]! < s && times[j]! >= s);
    if (!straddles) best = Math.max(best, j - i + 1);
  }
  return best;
}
