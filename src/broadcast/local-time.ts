// Delivery at each recipient's local time (sql/0020): a broadcast's deliver_at_local, read in each
// recipient's time zone, becomes the ledger row's next_attempt_at at fan-out. The claim takes only
// due rows, so a row whose hour has not come is neither claimed nor charged an attempt, and the
// broadcast job sleeps until the earliest one (drain.ts, engine.ts).
//
// PostgreSQL converts the wall-clock times (AT TIME ZONE, in the fan-out's INSERT … SELECT), so the
// zone rules are the server's tzdata, the same that the CHECKs on the zone columns consult. On a
// daylight-saving day a time that does not exist (02:30 when clocks jump to 03:00) is read as
// standard time, an hour later on the new clock (03:30), and a time that happens twice as its
// second occurrence; a 09:00 is never either, only its offset changes (test/broadcast/local-time).
import { PayloadError } from '../errors.js';
import { describeValue } from '../telegram/message.js';

/** A deliver_at_local, taken apart: `date` null means the next `time` after the fan-out. */
export interface LocalTime {
  date: string | null;
  /** HH:MM:SS */
  time: string;
}

// The same shape as sql/0020's broadcasts_deliver_at_local_valid.
const LOCAL_TIME = /^(?:(\d{4})-(\d{2})-(\d{2})[T ])?([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$/;

/** Reads deliver_at_local ("09:00", "09:00:30", "2026-12-24T09:00"); null when absent. */
export function parseDeliverAtLocal(value: unknown, path: string): LocalTime | null {
  if (value === undefined || value === null) return null;
  const m = typeof value === 'string' ? LOCAL_TIME.exec(value) : null;
  if (!m) throw new PayloadError(`${path} must be a local time "HH:MM" (24-hour, e.g. "09:00") or a local date and time "YYYY-MM-DDTHH:MM" (e.g. "2026-12-24T09:00"), got ${describeValue(value)}`);
  const [, year, month, day, hour, minute, second = '00'] = m;
  let date: string | null = null;
  if (year !== undefined) {
    const d = new Date(Date.UTC(Number(year), Number(month) - 1, Number(day)));
    if (d.getUTCFullYear() !== Number(year) || d.getUTCMonth() !== Number(month) - 1 || d.getUTCDate() !== Number(day) || Number(year) < 1) {
      throw new PayloadError(`${path} names a date that does not exist: ${year}-${month}-${day}`);
    }
    date = `${year}-${month}-${day}`;
  }
  return { date, time: `${hour}:${minute}:${second}` };
}

/** Refuses anything but an IANA time zone name (Intl's list: Europe/Berlin, America/New_York, UTC). */
export function parseTimeZone(value: unknown, path: string): string {
  if (typeof value === 'string' && value !== '' && value.length <= 64) {
    try {
      new Intl.DateTimeFormat('en', { timeZone: value });
      return value;
    } catch {
      // refused below, with the path
    }
  }
  throw new PayloadError(`${path} must be an IANA time zone (e.g. Europe/Berlin, America/New_York, UTC), got ${describeValue(value)}`);
}

/** A time at most this long past when the audience is fanned out is still today's: sent at once. */
export const LOCAL_TIME_GRACE_SECONDS = 60;

/**
 * SQL for a fanned-out row's next_attempt_at: `local` read in zone `zone` (an SQL expression),
 * measured from `now` (the database's clock when null). Parameters are pushed onto `params`.
 */
export function localDueSql(local: LocalTime, zone: string, now: Date | null, params: unknown[]): string {
  params.push(local.time);
  const time = `$${params.length}::time`;
  if (local.date !== null) {
    params.push(local.date);
    return `(($${params.length}::date + ${time}) AT TIME ZONE ${zone})`;
  }
  params.push(now);
  const at = `COALESCE($${params.length}::timestamptz, now())`;
  // Today's in the zone, or tomorrow's once today's has passed (by more than the grace).
  const today = `(((${at} AT TIME ZONE ${zone})::date + ${time}) AT TIME ZONE ${zone})`;
  const tomorrow = `((((${at} AT TIME ZONE ${zone})::date + 1) + ${time}) AT TIME ZONE ${zone})`;
  return `CASE WHEN ${today} >= ${at} - interval '${LOCAL_TIME_GRACE_SECONDS} seconds' THEN ${today} ELSE ${tomorrow} END`;
}
