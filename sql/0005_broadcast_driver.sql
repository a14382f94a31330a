-- One driver per broadcast, enforced here rather than by whoever enqueued the job. A broadcast job
-- takes the broadcast over before it touches the ledger: driver_job_id and driver_claimed_at name
-- one run of one job (the job's started_at, set by each claim). A driver is live while its job row
-- is still 'processing' with that started_at; a rescue (status back to pending) or a new claim
-- (a new started_at) ends it. Every ledger write of the engine checks that it is still the
-- driver (src/broadcast/ledger.ts), so a second job for the same broadcast, or a hung run that
-- was rescued and keeps going, changes nothing. Nullable columns without a default: no rewrite.
ALTER TABLE broadcasts
  ADD COLUMN driver_job_id bigint,
  ADD COLUMN driver_claimed_at timestamptz;

-- A paused broadcast's job waits as pending until its broadcast is resumed: _500_wake_on_resume
-- makes it due then, so it need not poll. One race is left to close here: a resume that lands
-- while the job is still 'processing' (it saw 'paused' and is about to record its snooze) finds
-- nothing pending to wake, and the snooze written just after would keep it asleep. So the snooze
-- itself checks: a broadcast job going back to pending for a pause (the engine's constant
-- message 'broadcast paused') whose broadcast is no longer paused is due at once.
-- The broadcast row is locked FOR SHARE first, which conflicts with any UPDATE of it: a resume not
-- yet committed is waited for, and the next query (a fresh snapshot) sees it; a resume that comes
-- after the lock waits for the snooze to commit, so that its trigger's query finds the job pending.
-- A plain read missed a resume in flight between the two (the job then slept a whole recheck).
-- No deadlock: the snooze holds the job row and waits for the broadcast row, while the resume holds
-- the broadcast row and its trigger skips a job whose committed version is still 'processing'
-- instead of waiting for its row lock. The lock takes no status filter: an uncommitted resume
-- still reads as 'paused' and would be filtered out without being waited for.
-- The WHEN clause keeps the hot path (claims, completions) to that test alone.
CREATE FUNCTION broadcast_queue_paused_job_resumed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 1 FROM broadcasts b WHERE b.job_id = NEW.job_id FOR SHARE;
  IF EXISTS (SELECT 1 FROM broadcasts b WHERE b.job_id = NEW.job_id AND b.status <> 'paused') THEN
    NEW.run_at := now();
  END IF;
  RETURN NEW;
END $$;

CREATE TRIGGER _400_paused_job_resumed
  BEFORE UPDATE ON broadcast_queue_jobs
  FOR EACH ROW
  WHEN (OLD.status = 'processing' AND NEW.status = 'pending' AND NEW.job_type = 'broadcast'
        AND NEW.last_error = 'broadcast paused' AND NEW.run_at > now())
  EXECUTE FUNCTION broadcast_queue_paused_job_resumed();
