// Cron expressions read in an IANA time zone, through croner (README: why each dependency is
// there). croner walks wall-clock time in the zone, so daylight-saving days come out right: a
// 02:30 schedule fires once on the day 02:30 does not exist (at 03:00, when the clock jumps) and
// once on the day it happens twice (at the first 02:30). test/schedules/cron.test.ts holds both,
// in Europe/Berlin and America/New_York.
import { Cron } from 'croner';

/** A tick taken up to this late is on time, not missed: timers and the re-read interval lag. */
export const LATE_GRACE_MS = 60_000;
/** At most this many missed ticks are back-filled in one go (a per-second cron and a long window). */
export const MAX_BACKFILL_TICKS = 1_000;

/** Refuses a cron expression or time zone croner cannot read, saying which and why. */
export function checkCron(cron: string, timeZone: string): void {
  try {
    new Intl.DateTimeFormat('en', { timeZone });
  } catch {
    throw new Error(`time zone ${JSON.stringify(timeZone)} is not an IANA time zone (e.g. Europe/Berlin, America/New_York, UTC)`);
  }
  let pattern: Cron;
  try {
    pattern = new Cron(cron, { timezone: timeZone, paused: true });
  } catch (error) {
    throw new Error(`cron ${JSON.stringify(cron)} is not valid: ${(error as Error).message}`);
  }
  if (pattern.nextRun(new Date()) === null) throw new Error(`cron ${JSON.stringify(cron)} never fires`);
}

/** The first tick strictly after `after`, or null if there is none. */
export function nextTick(cron: string, timeZone: string, after: Date): Date | null {
  return new Cron(cron, { timezone: timeZone, paused: true }).nextRun(after);
}

export interface DueTicks {
  /** The ticks to enqueue now, oldest first. */
  run: Date[];
  /** Whether due ticks older than the window were skipped as missed. */
  missed: boolean;
  /** The first tick after `now`: the schedule's next next_run_at. */
  next: Date | null;
}

/**
 * The ticks from `due` (the schedule's next_run_at) up to `now`: those at most
 * max(backfill, LATE_GRACE_MS) old are run, older ones skipped.
 */
export function dueTicks(cron: string, timeZone: string, due: Date, now: Date, backfillMs: number): DueTicks {
  const pattern = new Cron(cron, { timezone: timeZone, paused: true });
  const oldest = now.getTime() - Math.max(backfillMs, LATE_GRACE_MS);
  const run: Date[] = [];
  let missed = false;
  // Missed ticks before the window are not walked one by one (a per-second cron down for a week).
  let tick: Date | null = due;
  if (due.getTime() < oldest) {
    tick = pattern.nextRun(new Date(oldest - 1));
    missed = true;
  }
  while (tick !== null && tick.getTime() <= now.getTime()) {
    if (run.length < MAX_BACKFILL_TICKS) run.push(tick);
    else missed = true;
    tick = pattern.nextRun(tick);
  }
  return { run, missed, next: tick };
}
