-- Delivery at each recipient's local time (issue 16, part 3). A broadcast with deliver_at_local
-- sends to each recipient at that wall-clock time in the recipient's own time zone: the fan-out
-- writes each ledger row's next_attempt_at from the subscriber's time_zone (or the broadcast's
-- default_time_zone), and the drain claims only due rows, so a row whose hour has not come spends
-- no attempt. The broadcast job sleeps (a snooze, no worker slot held) until the earliest row is
-- due. From psql:
--   INSERT INTO broadcasts (title, message, audience, deliver_at_local, default_time_zone)
--   VALUES ('Morning', '{"text": "Good morning"}', '{}', '09:00', 'Europe/Berlin');
--
-- New nullable columns and one with a constant default: catalogue changes, no rewrite. The CHECKs
-- on the new columns scan broadcast_subscribers once (every time_zone still NULL).

-- IANA name (Europe/Berlin); NULL: the broadcast's default_time_zone. An unknown zone makes
-- AT TIME ZONE raise, so the INSERT or UPDATE fails naming the zone (as sql/0011's schedules).
ALTER TABLE broadcast_subscribers ADD COLUMN IF NOT EXISTS time_zone text
  CONSTRAINT broadcast_subscribers_time_zone_known
    CHECK (time_zone IS NULL OR ('2000-01-01 00:00Z'::timestamptz AT TIME ZONE time_zone) IS NOT NULL);

-- 'HH:MM' (or 'HH:MM:SS'): the next such time in each recipient's zone, counted from the fan-out
-- (a time at most a minute past still counts as today's). 'YYYY-MM-DDTHH:MM[:SS]': that date's,
-- sent at once to recipients whose moment had already passed when the audience was fanned out.
-- NULL: everyone at once, as before. The CASE orders the tests, so the date cast runs only on a
-- value the pattern accepted: a malformed value fails the CHECK, and an impossible date
-- (2026-02-30) fails the cast, whose message names it.
ALTER TABLE broadcasts
  ADD COLUMN IF NOT EXISTS deliver_at_local text
    CONSTRAINT broadcasts_deliver_at_local_valid
      CHECK (CASE WHEN deliver_at_local IS NULL THEN true
                  WHEN deliver_at_local !~ '^([0-9]{4}-[0-9]{2}-[0-9]{2}[T ])?([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$' THEN false
                  WHEN deliver_at_local ~ '^[0-9]{4}-' THEN left(deliver_at_local, 10)::date IS NOT NULL
                  ELSE true END),
  -- The zone of recipients with no time_zone of their own (and of explicit chat_ids that are not
  -- subscribers). Used only with deliver_at_local.
  ADD COLUMN IF NOT EXISTS default_time_zone text NOT NULL DEFAULT 'UTC'
    CONSTRAINT broadcasts_default_time_zone_known
      CHECK (('2000-01-01 00:00Z'::timestamptz AT TIME ZONE default_time_zone) IS NOT NULL);

-- A broadcast waiting for its recipients' hour has its job pending until then, possibly for hours.
-- Cancelling it now makes that job due at once (it sees 'cancelled' and ends), instead of leaving
-- it pending until the hour; a resume wakes a paused broadcast's job as before (sql/0002).
CREATE OR REPLACE FUNCTION broadcasts_wake_on_resume() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.job_id IS NOT NULL
     AND ((OLD.status = 'paused' AND NEW.status IN ('sending', 'queued', 'cancelled'))
          OR (NEW.status = 'cancelled' AND OLD.status <> 'cancelled')) THEN
    UPDATE broadcast_queue_jobs SET run_at = now(), updated_at = now()
     WHERE job_id = NEW.job_id AND status = 'pending' AND run_at > now();
  END IF;
  RETURN NULL;
END $$;
