-- Idle daemons advertise free slots; an INSERT hands its due jobs straight to one of them, and the
-- notification carries the jobs: no claim round trip between an insert and its handler (issue 17).
-- A job handed over is stored claimed, exactly as CLAIM_SQL (claimer.ts) would leave it (status,
-- attempt, owner, started_at), so the rescuer, the ownership guard and at-most-once are unchanged.
--
-- No foreign key to broadcast_queue_daemons: deleting a daemon's row would then wait for any
-- inserter holding its offer, and a daemon's stop must not wait on a producer's open transaction.
-- A stale offer is harmless: it is dropped once its daemon no longer holds its liveness lock.
CREATE TABLE IF NOT EXISTS broadcast_queue_idle_slots (
  daemon_id  text    PRIMARY KEY,
  lock_key   bigint  NOT NULL,
  queues     text[]  NOT NULL,
  job_types  text[]  NOT NULL,
  free       integer NOT NULL CHECK (free > 0),
  -- Random, per daemon process; the notification repeats it and the daemon runs nothing without
  -- it. NOTIFY needs no privilege at all, so without it any role that can connect could make a
  -- daemon run a job of its choosing (a send job: any message to any chat). Only a role that can
  -- read this table can forge one, and such a role is meant to be one that inserts jobs anyway.
  token      text    NOT NULL
);

-- The statement picks one offer before its first row. Its choice lives in transaction-local
-- settings (reset by every INSERT's own statement trigger) because a row trigger can see nothing
-- else of the statement; 'broadcast_queue.offer_open' is what the row trigger's WHEN tests, so a
-- bulk load pays one comparison a row once the offer is used up, or when there is none.
CREATE OR REPLACE FUNCTION broadcast_queue_offer_picked() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  slot record;
BEGIN
  PERFORM set_config('broadcast_queue.offer_open', 'off', true), set_config('broadcast_queue.offer_daemon', '', true);
  -- A session can opt out (SET broadcast_queue.hand_over = off): its jobs are claimed as before.
  IF COALESCE(current_setting('broadcast_queue.hand_over', true), '') = 'off'
     OR NOT EXISTS (SELECT 1 FROM broadcast_queue_idle_slots) THEN
    RETURN NULL;
  END IF;
  -- An offer another inserter holds is skipped: inserts never wait on each other here.
  FOR slot IN SELECT * FROM broadcast_queue_idle_slots FOR UPDATE SKIP LOCKED LOOP
    -- Taking the daemon's liveness lock succeeds only if the daemon is gone: its offer must not
    -- swallow jobs. (Shared, held to commit: it only delays a restart on that key.)
    IF pg_try_advisory_xact_lock_shared(25201, slot.lock_key::int) THEN
      DELETE FROM broadcast_queue_idle_slots WHERE daemon_id = slot.daemon_id;
      CONTINUE;
    END IF;
    PERFORM set_config('broadcast_queue.offer_open', 'on', true),
            set_config('broadcast_queue.offer_daemon', slot.daemon_id, true),
            set_config('broadcast_queue.offer_free', slot.free::text, true),
            set_config('broadcast_queue.offer_queues', slot.queues::text, true),
            set_config('broadcast_queue.offer_job_types', slot.job_types::text, true),
            set_config('broadcast_queue.offer_bytes', '0', true),
            set_config('broadcast_queue.offer_token', slot.token, true);
    RETURN NULL;
  END LOOP;
  RETURN NULL;
END $$;

-- Stores a due job claimed for the offer's daemon, as long as slots are left and the jobs fit in
-- one notification (PostgreSQL refuses 8,000 bytes or more, and would fail the producer's INSERT):
-- each job is counted as it will be sent, so a payload too large for it is left to the claim.
-- Jobs with dependencies are left too (their results are not in the notification), and so is a
-- row inserted with attempts other than 0: counting its claim here would run before the CHECK
-- constraints, and an attempts of -1 would pass as 0 instead of being refused.
CREATE OR REPLACE FUNCTION broadcast_queue_handed_over() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  bytes integer;
  free integer;
BEGIN
  IF NEW.status <> 'pending' OR NEW.attempts <> 0 OR NEW.run_at > now() OR COALESCE(cardinality(NEW.depends_on), 0) > 0
     OR NOT NEW.queue = ANY (current_setting('broadcast_queue.offer_queues')::text[])
     OR NOT NEW.job_type = ANY (current_setting('broadcast_queue.offer_job_types')::text[]) THEN
    RETURN NEW;
  END IF;
  -- The entry's fixed parts (numbers, times, punctuation) take under 120 bytes.
  bytes := current_setting('broadcast_queue.offer_bytes')::integer + 120 + octet_length(NEW.payload::text)
           + octet_length(to_jsonb(NEW.queue)::text) + octet_length(to_jsonb(NEW.job_type)::text)
           + octet_length(COALESCE(to_jsonb(NEW.job_key)::text, ''));
  IF bytes > 7000 THEN
    RETURN NEW;
  END IF;
  free := current_setting('broadcast_queue.offer_free')::integer - 1;
  PERFORM set_config('broadcast_queue.offer_bytes', bytes::text, true),
          set_config('broadcast_queue.offer_free', free::text, true);
  IF free = 0 THEN
    PERFORM set_config('broadcast_queue.offer_open', 'off', true);
  END IF;
  NEW.status := 'processing';
  NEW.attempts := NEW.attempts + 1;
  NEW.locked_by := current_setting('broadcast_queue.offer_daemon');
  NEW.started_at := now();
  NEW.finished_at := NULL;
  NEW.updated_at := now();
  RETURN NEW;
END $$;

-- Tells the daemon what it was handed (only rows really inserted: ON CONFLICT may have skipped
-- some), takes the slots used from its offer, and wakes every daemon for the rest as before.
CREATE OR REPLACE FUNCTION broadcast_queue_notify_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  due_queue text;
  daemon text := current_setting('broadcast_queue.offer_daemon', true);
  batch jsonb;
  handed integer;
  token text;
BEGIN
  IF daemon <> '' THEN
    PERFORM set_config('broadcast_queue.offer_open', 'off', true), set_config('broadcast_queue.offer_daemon', '', true);
    token := current_setting('broadcast_queue.offer_token');
    -- Not left readable by the rest of the producer's transaction.
    PERFORM set_config('broadcast_queue.offer_token', '', true);
    SELECT jsonb_agg(jsonb_build_array(job_id, queue, job_type, payload, attempts, max_attempts,
                                       (extract(epoch FROM run_at) * 1000)::float8, priority, job_key,
                                       (extract(epoch FROM created_at) * 1000)::float8)
                     ORDER BY priority DESC, run_at, job_id), count(*)
      INTO batch, handed
      FROM inserted_rows WHERE status = 'processing' AND locked_by = daemon AND started_at = now();
    IF handed > 0 THEN
      UPDATE broadcast_queue_idle_slots SET free = free - handed WHERE daemon_id = daemon AND free > handed;
      IF NOT FOUND THEN
        DELETE FROM broadcast_queue_idle_slots WHERE daemon_id = daemon;
      END IF;
      -- claimedAt in the form CLAIM_SQL returns it (UTC, microseconds), whatever this session's
      -- TimeZone: the daemon tells runs apart by it.
      PERFORM pg_notify('broadcast_queue_assigned', jsonb_build_object(
        'daemon', daemon,
        'token', token,
        'claimedAt', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'jobs', batch)::text);
    END IF;
  END IF;
  FOR due_queue IN SELECT DISTINCT queue FROM inserted_rows WHERE status = 'pending' LOOP
    PERFORM pg_notify('broadcast_queue', due_queue);
  END LOOP;
  RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS _050_offer_picked ON broadcast_queue_jobs;
CREATE TRIGGER _050_offer_picked
  BEFORE INSERT ON broadcast_queue_jobs
  FOR EACH STATEMENT EXECUTE FUNCTION broadcast_queue_offer_picked();

-- After _100_dependencies_checked, which may turn a row 'waiting'.
DROP TRIGGER IF EXISTS _800_handed_over ON broadcast_queue_jobs;
CREATE TRIGGER _800_handed_over
  BEFORE INSERT ON broadcast_queue_jobs
  FOR EACH ROW WHEN (current_setting('broadcast_queue.offer_open', true) = 'on')
  EXECUTE FUNCTION broadcast_queue_handed_over();
