import type { Pool } from '../db/pool.js';

// Every statement on the rate limiter's tables (broadcast_rate_limits, a row a bot, and
// broadcast_chat_pacing, a row a chat; sql/0002): RateLimiter runs them, and status readers
// (bqctl status and doctor, /status, the dashboard) call readRateLimitState.

// Reserves `count` evenly spaced send times from the bot's shared timeline. The row lock
// serialises daemons, so their reservations never overlap; a 429 pause pushes the timeline out.
// Only while the timeline is reserved less than $4 ms ahead: no row when it is further.
//
// No send may start later than LATE_SLOT_MS after its slot. A per-send "late allowance" (sql/0019,
// now unused) let a process with late timers start up to 500 ms late, the timeline after it
// pushed back as much: with two daemons, one late and one not, their send jobs' reservations
// alternated and each pushed the timeline another allowance ahead, until slots were 2 s out and
// every send job waited for them (chaos load --stress, with no broadcast running); and allowance
// sends packed together could bunch past the limit. A late send catches up instead (catchUp).
// The column is still written 0, so that an older daemon beside this one during an upgrade reads
// no allowance left over from before and starts no reservation early.
export const RESERVE_SQL = `
  WITH cur AS (
    SELECT GREATEST(next_slot_at, clock_timestamp(), COALESCE(paused_until, '-infinity')) AS first_slot,
           next_slot_at, clock_timestamp() AS now, halted_at IS NOT NULL AS halted, halt_reason
      FROM broadcast_rate_limits
     WHERE bot_id = $1 AND next_slot_at <= clock_timestamp() + $4::float8 * interval '1 millisecond'
       FOR UPDATE
  )
  UPDATE broadcast_rate_limits r
     SET next_slot_at = cur.first_slot + $2::float8 * $3::float8 * interval '1 microsecond', late_allowance = interval '0', updated_at = now()
    FROM cur
   WHERE r.bot_id = $1
  RETURNING (extract(epoch FROM cur.first_slot) * 1000)::float8 AS first_slot_ms,
            r.next_slot_at::text AS reserved_until,
            (extract(epoch FROM cur.now) * 1000)::float8 AS db_now_ms,
            cur.halted, cur.halt_reason`;

// A caller whose slots were missed (it ran late) sends now instead, as far as the timeline allows.
// Its unused slots go back first ($5 of them at the end of the reservation that ended at $4, while
// nobody reserved after it). Then k of its $2 sends may leave at once: one if the timeline is free
// now, and k >= 2 only if it lay unused for k spacings before now; the other $2 - k get the evenly
// spaced slots that follow k spacings after now. A burst of k so flanked by 2k spacings holds no
// second to more than evenly spaced sends would (see catchUp). k = 0 when the timeline is reserved
// past now (other sends were reserved after the caller's): the $2 sends then get the slots at the
// timeline's end like RESERVE_SQL's, while it is reserved less than $6 ms ahead. Nothing is
// reserved while a pause or a halt is on.
export const CATCH_UP_SQL = `
  WITH cur AS (
    SELECT CASE WHEN next_slot_at = $4::timestamptz THEN next_slot_at - $5::float8 * $3::float8 * interval '1 microsecond'
                ELSE next_slot_at END AS head,
           clock_timestamp() AS now,
           COALESCE(paused_until > clock_timestamp(), false) AS paused,
           (extract(epoch FROM paused_until - clock_timestamp()) * 1000)::float8 AS paused_ms,
           halted_at IS NOT NULL AS halted, halt_reason
      FROM broadcast_rate_limits WHERE bot_id = $1 FOR UPDATE
  ), take AS (
    SELECT CASE WHEN paused OR halted OR head > now THEN 0
                ELSE LEAST($2::int, GREATEST(1, floor((extract(epoch FROM now - head) * 1000000)::float8 / $3::float8)::int)) END AS k,
           CASE WHEN paused OR halted OR head > now + $6::float8 * interval '1 millisecond' THEN NULL
                ELSE GREATEST(head, now) END AS first_slot
      FROM cur
  )
  UPDATE broadcast_rate_limits r
     SET next_slot_at = COALESCE(take.first_slot + $2::float8 * $3::float8 * interval '1 microsecond', cur.head),
         updated_at = now()
    FROM cur, take
   WHERE r.bot_id = $1
  RETURNING take.k, (extract(epoch FROM take.first_slot) * 1000)::float8 AS first_slot_ms,
            (extract(epoch FROM cur.now) * 1000)::float8 AS db_now_ms, r.next_slot_at::text AS reserved_until,
            cur.paused, cur.paused_ms, cur.halted, cur.halt_reason`;

// How far ahead of now the timeline is already reserved, and whether sending is halted.
export const AHEAD_SQL = `
  SELECT (extract(epoch FROM next_slot_at - clock_timestamp()) * 1000)::float8 AS ahead_ms,
         halted_at IS NOT NULL AS halted, halt_reason
    FROM broadcast_rate_limits WHERE bot_id = $1`;

// Per-chat pacing, cluster-wide: each chat has its own timeline with a fixed spacing.
export const PACE_SQL = `
  INSERT INTO broadcast_chat_pacing AS p (bot_id, chat_id, next_allowed_at)
  SELECT $1, c, clock_timestamp() + $3::float8 * interval '1 millisecond' FROM unnest($2::bigint[]) AS c
  ON CONFLICT (bot_id, chat_id) DO UPDATE
     SET next_allowed_at = GREATEST(p.next_allowed_at, clock_timestamp()) + $3::float8 * interval '1 millisecond'
  RETURNING chat_id, extract(epoch FROM next_allowed_at) * 1000 - $3::float8 AS allowed_ms,
            next_allowed_at::text AS reserved_until,
            (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS db_now_ms`;

// Gives back chat reservations that were never used, each only while it is still the last one on
// its chat's timeline (nobody reserved after it): the timeline then ends where it began. The text
// form of a timestamptz round-trips to the microsecond, so equality is exact.
export const RELEASE_SQL = `
  UPDATE broadcast_chat_pacing p
     SET next_allowed_at = p.next_allowed_at - $4::float8 * interval '1 millisecond'
    FROM unnest($2::bigint[], $3::timestamptz[]) AS r(chat_id, reserved_until)
   WHERE p.bot_id = $1 AND p.chat_id = r.chat_id AND p.next_allowed_at = r.reserved_until`;

// PACE_SQL and RESERVE_SQL for one chat and one slot, as one statement (one commit); without the
// slot when $5 is false (a broadcast of the caller's lends it one). While a 429
// pause (any daemon's) is on, nothing is reserved: the caller gets the pause's end instead and
// gives its worker slot back until then, rather than holding it through the pause.
export const RESERVE_FOR_CHAT_SQL = `
  WITH state AS (
    SELECT paused_until > clock_timestamp() AS paused,
           -- float8: extract() gives numeric, which node-pg hands over as a string, and Date.now() + '993'
           -- is a string that parsed to a pause of 56,000 years (chaos telegram, every daemon stalled).
           (extract(epoch FROM paused_until - clock_timestamp()) * 1000)::float8 AS paused_ms,
           (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS db_now_ms,
           halted_at IS NOT NULL AS halted, halt_reason
      FROM broadcast_rate_limits WHERE bot_id = $1
  ), pace AS (
    INSERT INTO broadcast_chat_pacing AS p (bot_id, chat_id, next_allowed_at)
    SELECT $1, $3, clock_timestamp() + $4::float8 * interval '1 millisecond'
     WHERE NOT EXISTS (SELECT 1 FROM state WHERE paused OR halted)
    ON CONFLICT (bot_id, chat_id) DO UPDATE
       SET next_allowed_at = GREATEST(p.next_allowed_at, clock_timestamp()) + $4::float8 * interval '1 millisecond'
    RETURNING extract(epoch FROM next_allowed_at) * 1000 - $4::float8 AS allowed_ms
  ), cur AS (
    SELECT GREATEST(next_slot_at, clock_timestamp(), COALESCE(paused_until, '-infinity')) AS first_slot
      FROM broadcast_rate_limits WHERE bot_id = $1 AND $5::boolean AND NOT EXISTS (SELECT 1 FROM state WHERE paused OR halted)
       FOR UPDATE
  ), slot AS (
    UPDATE broadcast_rate_limits r
       SET next_slot_at = cur.first_slot + $2::float8 * interval '1 microsecond', late_allowance = interval '0', updated_at = now()
      FROM cur
     WHERE r.bot_id = $1
    RETURNING (extract(epoch FROM cur.first_slot) * 1000)::float8 AS first_slot_ms, r.next_slot_at::text AS reserved_until
  )
  SELECT (SELECT allowed_ms FROM pace) AS allowed_ms, (SELECT first_slot_ms FROM slot) AS first_slot_ms,
         (SELECT reserved_until FROM slot) AS reserved_until, state.*
    FROM state`;

// The bot's row, created on first use (RateLimiter.ensureRow).
export const ENSURE_ROW_SQL = 'INSERT INTO broadcast_rate_limits (bot_id) VALUES ($1) ON CONFLICT (bot_id) DO NOTHING';

// A 429 pauses every daemon; a second one never shortens a longer pause already on.
export const PAUSE_SQL = `
  UPDATE broadcast_rate_limits
     SET paused_until = GREATEST(COALESCE(paused_until, '-infinity'), now() + $2::float8 * interval '1 millisecond'),
         pause_reason = $3, updated_at = now()
   WHERE bot_id = $1`;

export const HALT_SQL = `UPDATE broadcast_rate_limits SET halted_at = now(), halt_reason = $2, updated_at = now() WHERE bot_id = $1`;

export const CLEAR_HALT_SQL = `UPDATE broadcast_rate_limits SET halted_at = NULL, halt_reason = NULL, updated_at = now() WHERE bot_id = $1 AND halted_at IS NOT NULL`;

export interface RateLimitState {
  botId: number;
  nextSlotAt: Date;
  pausedUntil: Date | null;
  pauseReason: string | null;
  haltedAt: Date | null;
  haltReason: string | null;
}

export async function readRateLimitState(pool: Pool): Promise<RateLimitState[]> {
  const { rows } = await pool.query('SELECT * FROM broadcast_rate_limits ORDER BY bot_id');
  return rows.map((r) => ({ botId: r.bot_id, nextSlotAt: r.next_slot_at, pausedUntil: r.paused_until, pauseReason: r.pause_reason, haltedAt: r.halted_at, haltReason: r.halt_reason }));
}
