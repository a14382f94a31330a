-- migrate: no-transaction
-- Finished jobs counted as they finish, so that /status, /statistics, /metrics and bqctl status
-- cost what is active, not what is kept. They grouped every kept job (2,000,000 completed and
-- 200,000 failed: 307 ms for /status, 703 ms for /statistics, paid by every Prometheus scrape).
-- Pending and processing work is still counted from the table, through its partial indexes.
--
-- Statement triggers append one signed row per (queue, job_type, status, retried) that a statement
-- moved into or out of a finished status: a batch of 250 completions writes a row or two, and
-- nobody waits on a shared counter row (a long transaction that cancels jobs would otherwise hold
-- every recorder). broadcast_queue_roll_up_counts() folds the rows into one per key; the sweep calls
-- it. Retries (failed → pending), cancels, the cleaner's deletes and SQL written by hand all go
-- through the same triggers.
CREATE TABLE IF NOT EXISTS broadcast_queue_job_counts (
  queue     text    NOT NULL,
  job_type  text    NOT NULL,
  status    text    NOT NULL,
  -- attempts > 1: /statistics's retried_jobs.
  retried   boolean NOT NULL,
  jobs      bigint  NOT NULL
);

-- Completed and failed jobs by the minute they finished in, for the 1-hour and 24-hour windows;
-- minutes older than 25 hours are dropped by the roll-up.
CREATE TABLE IF NOT EXISTS broadcast_queue_job_finishes (
  minute            timestamptz NOT NULL,
  job_type          text        NOT NULL,
  status            text        NOT NULL,
  jobs              bigint      NOT NULL,
  -- Sum of finished_at - started_at, for the average duration.
  duration_seconds  float8      NOT NULL
);

-- Rows a statement leaves alone in a finished status appear as -1 and +1 and cancel out.
CREATE OR REPLACE FUNCTION broadcast_queue_count_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  WITH change AS (
    SELECT queue, job_type, status, attempts > 1 AS retried, finished_at, started_at, 1 AS sign
      FROM inserted_rows WHERE status IN ('completed', 'failed', 'cancelled')
  ), counted AS (
    INSERT INTO broadcast_queue_job_counts (queue, job_type, status, retried, jobs)
    SELECT queue, job_type, status, retried, sum(sign) FROM change GROUP BY 1, 2, 3, 4 HAVING sum(sign) <> 0
  )
  INSERT INTO broadcast_queue_job_finishes (minute, job_type, status, jobs, duration_seconds)
  SELECT date_trunc('minute', finished_at), job_type, status, sum(sign),
         COALESCE(sum(sign * extract(epoch FROM finished_at - started_at)), 0)
    FROM change WHERE status IN ('completed', 'failed') AND finished_at > now() - interval '25 hours'
   GROUP BY 1, 2, 3 HAVING sum(sign) <> 0;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION broadcast_queue_count_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  WITH change AS (
    SELECT queue, job_type, status, attempts > 1 AS retried, finished_at, started_at, 1 AS sign
      FROM new_rows WHERE status IN ('completed', 'failed', 'cancelled')
    UNION ALL
    SELECT queue, job_type, status, attempts > 1, finished_at, started_at, -1
      FROM old_rows WHERE status IN ('completed', 'failed', 'cancelled')
  ), counted AS (
    INSERT INTO broadcast_queue_job_counts (queue, job_type, status, retried, jobs)
    SELECT queue, job_type, status, retried, sum(sign) FROM change GROUP BY 1, 2, 3, 4 HAVING sum(sign) <> 0
  )
  INSERT INTO broadcast_queue_job_finishes (minute, job_type, status, jobs, duration_seconds)
  SELECT date_trunc('minute', finished_at), job_type, status, sum(sign),
         COALESCE(sum(sign * extract(epoch FROM finished_at - started_at)), 0)
    FROM change WHERE status IN ('completed', 'failed') AND finished_at > now() - interval '25 hours'
   GROUP BY 1, 2, 3 HAVING sum(sign) <> 0 OR COALESCE(sum(sign * extract(epoch FROM finished_at - started_at)), 0) <> 0;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION broadcast_queue_count_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  WITH change AS (
    SELECT queue, job_type, status, attempts > 1 AS retried, finished_at, started_at, -1 AS sign
      FROM deleted_rows WHERE status IN ('completed', 'failed', 'cancelled')
  ), counted AS (
    INSERT INTO broadcast_queue_job_counts (queue, job_type, status, retried, jobs)
    SELECT queue, job_type, status, retried, sum(sign) FROM change GROUP BY 1, 2, 3, 4 HAVING sum(sign) <> 0
  )
  INSERT INTO broadcast_queue_job_finishes (minute, job_type, status, jobs, duration_seconds)
  SELECT date_trunc('minute', finished_at), job_type, status, sum(sign),
         COALESCE(sum(sign * extract(epoch FROM finished_at - started_at)), 0)
    FROM change WHERE status IN ('completed', 'failed') AND finished_at > now() - interval '25 hours'
   GROUP BY 1, 2, 3 HAVING sum(sign) <> 0;
  RETURN NULL;
END $$;

-- TRUNCATE fires no row or DELETE trigger: without this the counts would keep every job it removed.
CREATE OR REPLACE FUNCTION broadcast_queue_count_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM broadcast_queue_job_counts;
  DELETE FROM broadcast_queue_job_finishes;
  RETURN NULL;
END $$;

-- Folds the appended rows into one per key. Two roll-ups at once are safe: the second one's DELETE
-- skips the rows the first one deleted, and sums are kept either way.
CREATE OR REPLACE FUNCTION broadcast_queue_roll_up_counts() RETURNS void
LANGUAGE sql AS $$
  WITH gone AS (DELETE FROM broadcast_queue_job_counts RETURNING *)
  INSERT INTO broadcast_queue_job_counts (queue, job_type, status, retried, jobs)
  SELECT queue, job_type, status, retried, sum(jobs) FROM gone GROUP BY 1, 2, 3, 4 HAVING sum(jobs) <> 0;
  WITH gone AS (DELETE FROM broadcast_queue_job_finishes RETURNING *)
  INSERT INTO broadcast_queue_job_finishes (minute, job_type, status, jobs, duration_seconds)
  SELECT minute, job_type, status, sum(jobs), sum(duration_seconds) FROM gone
   WHERE minute > now() - interval '25 hours'
   GROUP BY 1, 2, 3 HAVING sum(jobs) <> 0;
$$;
-- migrate: step
-- Each trigger is created in a short transaction of its own (the lock it takes stops writers only
-- while it is created). Transition tables allow one event per trigger.
BEGIN;
DROP TRIGGER IF EXISTS _200_count_inserted ON broadcast_queue_jobs;
CREATE TRIGGER _200_count_inserted AFTER INSERT ON broadcast_queue_jobs
  REFERENCING NEW TABLE AS inserted_rows FOR EACH STATEMENT EXECUTE FUNCTION broadcast_queue_count_inserted();
DROP TRIGGER IF EXISTS _200_count_updated ON broadcast_queue_jobs;
CREATE TRIGGER _200_count_updated AFTER UPDATE ON broadcast_queue_jobs
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION broadcast_queue_count_updated();
DROP TRIGGER IF EXISTS _200_count_deleted ON broadcast_queue_jobs;
CREATE TRIGGER _200_count_deleted AFTER DELETE ON broadcast_queue_jobs
  REFERENCING OLD TABLE AS deleted_rows FOR EACH STATEMENT EXECUTE FUNCTION broadcast_queue_count_deleted();
DROP TRIGGER IF EXISTS _200_count_truncated ON broadcast_queue_jobs;
CREATE TRIGGER _200_count_truncated AFTER TRUNCATE ON broadcast_queue_jobs
  FOR EACH STATEMENT EXECUTE FUNCTION broadcast_queue_count_truncated();
COMMIT;
-- migrate: step
-- The jobs that finished before the triggers existed, counted once from one snapshot: what that
-- snapshot shows minus the rows the triggers already appended for changes it also shows. Safe to
-- run again: with the counts complete, it adds nothing. A read, so it blocks no writer.
BEGIN ISOLATION LEVEL REPEATABLE READ;
INSERT INTO broadcast_queue_job_counts (queue, job_type, status, retried, jobs)
SELECT queue, job_type, status, retried, sum(jobs) FROM (
  SELECT queue, job_type, status, attempts > 1 AS retried, count(*) AS jobs
    FROM broadcast_queue_jobs WHERE status IN ('completed', 'failed', 'cancelled') GROUP BY 1, 2, 3, 4
  UNION ALL
  SELECT queue, job_type, status, retried, -jobs FROM broadcast_queue_job_counts
) seen GROUP BY 1, 2, 3, 4 HAVING sum(jobs) <> 0;
INSERT INTO broadcast_queue_job_finishes (minute, job_type, status, jobs, duration_seconds)
SELECT minute, job_type, status, sum(jobs), sum(duration_seconds) FROM (
  SELECT date_trunc('minute', finished_at) AS minute, job_type, status, count(*) AS jobs,
         COALESCE(sum(extract(epoch FROM finished_at - started_at)), 0) AS duration_seconds
    FROM broadcast_queue_jobs
   WHERE status IN ('completed', 'failed') AND finished_at > now() - interval '25 hours' GROUP BY 1, 2, 3
  UNION ALL
  SELECT minute, job_type, status, -jobs, -duration_seconds FROM broadcast_queue_job_finishes
) seen GROUP BY 1, 2, 3 HAVING sum(jobs) <> 0;
COMMIT;
