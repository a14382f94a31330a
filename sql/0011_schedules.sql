-- Recurring schedules (issue 16): each row enqueues a job on every tick of its cron expression,
-- read in its IANA time zone. Any number of daemons share the work with no leader: a tick is
-- taken by a conditional UPDATE of next_run_at (src/schedules/schedules-store.ts), which only one
-- of them can win. Managed by bqctl schedule, the library and the admin API, or plain SQL:
--   INSERT INTO broadcast_queue_schedules (name, cron, time_zone, job_type, payload)
--   VALUES ('weekly-digest', '0 9 * * 1', 'Europe/Berlin', 'broadcast', '{"broadcast_id": 7}');
-- next_run_at may be left NULL: the first daemon to see the row computes it from the cron.
CREATE TABLE broadcast_queue_schedules (
  name              text        PRIMARY KEY,
  -- Five fields (minute hour day month weekday) or six with seconds first; croner's syntax.
  cron              text        NOT NULL,
  time_zone         text        NOT NULL DEFAULT 'UTC',
  queue             text        NOT NULL DEFAULT 'broadcasts',
  job_type          text        NOT NULL DEFAULT 'broadcast',
  -- The payload of every job it enqueues (a broadcast job's payload is a broadcast template:
  -- {"broadcast_id": …} or an inline {"message": …, "audience": …}).
  payload           jsonb       NOT NULL DEFAULT '{}',
  priority          integer     NOT NULL DEFAULT 0,
  max_attempts      integer     NOT NULL DEFAULT 3,
  enabled           boolean     NOT NULL DEFAULT true,
  -- Ticks missed while no daemon ran (or while paused) are skipped, except those at most this
  -- many seconds old, which are enqueued late, one job each. 0: skip every missed tick (a tick
  -- taken up to a minute late is not missed: src/schedules/cron.ts LATE_GRACE_MS).
  backfill_seconds  integer     NOT NULL DEFAULT 0,
  -- The next tick not taken yet; NULL until a daemon has computed it.
  next_run_at       timestamptz,
  last_run_at       timestamptz,
  last_job_id       bigint,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),

  CONSTRAINT broadcast_queue_schedules_name_valid CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$'),
  CONSTRAINT broadcast_queue_schedules_cron_not_blank CHECK (length(cron) BETWEEN 1 AND 256 AND cron !~ '^\s*$'),
  -- An unknown zone makes AT TIME ZONE raise: the INSERT fails naming the zone.
  CONSTRAINT broadcast_queue_schedules_time_zone_known CHECK (('2000-01-01 00:00Z'::timestamptz AT TIME ZONE time_zone) IS NOT NULL),
  CONSTRAINT broadcast_queue_schedules_queue_not_blank CHECK (length(queue) BETWEEN 1 AND 128 AND queue !~ '^\s*$'),
  CONSTRAINT broadcast_queue_schedules_job_type_not_blank CHECK (length(job_type) BETWEEN 1 AND 128 AND job_type !~ '^\s*$'),
  CONSTRAINT broadcast_queue_schedules_payload_is_object CHECK (jsonb_typeof(payload) = 'object'),
  CONSTRAINT broadcast_queue_schedules_payload_at_most_1_mib CHECK (pg_column_size(payload) <= 1048576),
  CONSTRAINT broadcast_queue_schedules_max_attempts_between_1_and_100 CHECK (max_attempts BETWEEN 1 AND 100),
  CONSTRAINT broadcast_queue_schedules_priority_range CHECK (priority BETWEEN -1000000 AND 1000000),
  CONSTRAINT broadcast_queue_schedules_backfill_within_a_year CHECK (backfill_seconds BETWEEN 0 AND 31622400)
);
