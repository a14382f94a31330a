-- migrate: no-transaction
-- Job dependencies (issue 16): `depends_on bigint[]` names jobs that must complete first.
--
-- A job whose dependencies are still open is stored as status 'waiting', not 'pending': the claim
-- reads pending jobs only through broadcast_queue_jobs_claim_by_type_idx (WHERE status = 'pending',
-- sql/0008), so a waiting job is not in the index the claim scans at all. The claim's SQL and plan
-- stay what they were; nothing walks past blocked rows. River does the same with its own 'pending'
-- state for workflow jobs.
--
-- Resolution happens in the statement that finishes the last dependency (a trigger, below), so a
-- dependent is pending, with its NOTIFY sent, when that statement commits: no resolver loop to
-- wait for (pg-boss 12 resolves every 5 s). pg-boss first promoted dependents inside every
-- completion and made completions 50x slower; here the trigger looks only at finished rows
-- marked has_dependents (set when a dependent naming them is inserted), so a job nobody depends
-- on costs it a filter over the statement's own rows (bench/production/dependency-cost.ts).
--
-- Cycles cannot be expressed: every id in depends_on must name a row that exists when the
-- dependent is inserted, and depends_on cannot change afterwards. So every edge points from a
-- row to one inserted before it, and insertion order is a topological order of the graph.
--
-- Columns first, in a short transaction of its own (a new column with a constant default is a
-- catalogue change, no rewrite). The status constraint is replaced NOT VALID and validated in
-- the next step, which does not stop writers.
BEGIN;
ALTER TABLE broadcast_queue_jobs
  ADD COLUMN IF NOT EXISTS depends_on bigint[],
  -- 'cancel': a dependency that fails or is cancelled cancels this job (and, through it, its own
  -- dependents). 'run': this job runs once every dependency has finished, however it finished.
  ADD COLUMN IF NOT EXISTS on_dependency_failure text NOT NULL DEFAULT 'cancel',
  -- Set on a job when a dependent naming it is inserted; gates the trigger that resolves dependents.
  ADD COLUMN IF NOT EXISTS has_dependents boolean NOT NULL DEFAULT false;
ALTER TABLE broadcast_queue_jobs DROP CONSTRAINT IF EXISTS broadcast_queue_jobs_on_dependency_failure_valid;
ALTER TABLE broadcast_queue_jobs ADD CONSTRAINT broadcast_queue_jobs_on_dependency_failure_valid
  CHECK (on_dependency_failure IN ('cancel', 'run')) NOT VALID;
ALTER TABLE broadcast_queue_jobs DROP CONSTRAINT IF EXISTS broadcast_queue_jobs_depends_on_at_most_1000;
ALTER TABLE broadcast_queue_jobs ADD CONSTRAINT broadcast_queue_jobs_depends_on_at_most_1000
  CHECK (cardinality(depends_on) <= 1000) NOT VALID;
ALTER TABLE broadcast_queue_jobs DROP CONSTRAINT IF EXISTS broadcast_queue_jobs_status_valid;
ALTER TABLE broadcast_queue_jobs ADD CONSTRAINT broadcast_queue_jobs_status_valid
  CHECK (status IN ('waiting', 'pending', 'processing', 'completed', 'failed', 'cancelled')) NOT VALID;

-- Runs before a job with dependencies is stored as pending (an INSERT, or a retry putting it back):
-- refuses unknown ids, then decides 'waiting', 'pending' or 'cancelled'.
-- The open dependencies are marked (has_dependents; a finished one needs no mark: it is resolved
-- here) and all are locked FOR SHARE until this transaction ends. A completion of one of them that
-- comes later waits for this insert to commit and then sees the mark, so its trigger finds this
-- job; one that came earlier is seen here as finished. Either way
-- the last completion and this insert cannot miss each other. The mark is written before the share
-- lock is taken: two inserts holding share locks and then both updating would deadlock.
-- Each statement of a PL/pgSQL function takes a fresh snapshot (READ COMMITTED), so the status read
-- after the locks is the committed one.
CREATE OR REPLACE FUNCTION broadcast_queue_dependencies_checked() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  unknown_id bigint;
  broken record;
BEGIN
  IF array_position(NEW.depends_on, NULL) IS NOT NULL THEN
    RAISE EXCEPTION 'depends_on of a job cannot hold NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  UPDATE broadcast_queue_jobs SET has_dependents = true
   WHERE job_id = ANY (NEW.depends_on) AND NOT has_dependents AND status NOT IN ('completed', 'failed', 'cancelled');
  PERFORM 1 FROM broadcast_queue_jobs WHERE job_id = ANY (NEW.depends_on) ORDER BY job_id FOR SHARE;
  SELECT min(wanted) INTO unknown_id FROM unnest(NEW.depends_on) AS wanted
   WHERE NOT EXISTS (SELECT 1 FROM broadcast_queue_jobs WHERE job_id = wanted);
  IF unknown_id IS NOT NULL THEN
    RAISE EXCEPTION 'depends_on names job %, which does not exist', unknown_id
      USING ERRCODE = 'foreign_key_violation',
            HINT = 'A job can depend only on jobs inserted before it. Finished jobs are deleted after the cleanup retention (BQ_CLEANUP_DAYS).';
  END IF;
  IF NEW.on_dependency_failure = 'cancel' THEN
    SELECT job_id, status INTO broken FROM broadcast_queue_jobs
     WHERE job_id = ANY (NEW.depends_on) AND status IN ('failed', 'cancelled') ORDER BY job_id LIMIT 1;
    IF FOUND THEN
      NEW.status := 'cancelled';
      NEW.finished_at := now();
      NEW.last_error := format('dependency %s %s', broken.job_id, broken.status);
      RETURN NEW;
    END IF;
  END IF;
  IF EXISTS (SELECT 1 FROM broadcast_queue_jobs WHERE job_id = ANY (NEW.depends_on) AND status NOT IN ('completed', 'failed', 'cancelled')) THEN
    NEW.status := 'waiting';
  END IF;
  RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS _100_dependencies_checked ON broadcast_queue_jobs;
CREATE TRIGGER _100_dependencies_checked
  BEFORE INSERT ON broadcast_queue_jobs
  FOR EACH ROW
  WHEN (NEW.status = 'pending' AND cardinality(NEW.depends_on) > 0)
  EXECUTE FUNCTION broadcast_queue_dependencies_checked();

-- A retry (bqctl retry, the API) of a job with dependencies: it waits again for those still open,
-- and a dependency that failed cancels it again, saying so.
DROP TRIGGER IF EXISTS _100_dependencies_checked_again ON broadcast_queue_jobs;
CREATE TRIGGER _100_dependencies_checked_again
  BEFORE UPDATE OF status ON broadcast_queue_jobs
  FOR EACH ROW
  WHEN (NEW.status = 'pending' AND OLD.status IN ('failed', 'cancelled') AND cardinality(NEW.depends_on) > 0)
  EXECUTE FUNCTION broadcast_queue_dependencies_checked();

-- Changing depends_on later could close a cycle (an older job made to depend on a newer one).
CREATE OR REPLACE FUNCTION broadcast_queue_dependencies_fixed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'depends_on of job % cannot change after it is inserted', OLD.job_id
    USING ERRCODE = 'check_violation', HINT = 'Insert a new job with the dependencies it needs.';
END $$;

DROP TRIGGER IF EXISTS _100_dependencies_fixed ON broadcast_queue_jobs;
CREATE TRIGGER _100_dependencies_fixed
  BEFORE UPDATE OF depends_on ON broadcast_queue_jobs
  FOR EACH ROW
  WHEN (OLD.depends_on IS DISTINCT FROM NEW.depends_on)
  EXECUTE FUNCTION broadcast_queue_dependencies_fixed();

-- Jobs that someone depends on have finished: their waiting dependents are cancelled (for a
-- dependency that failed or was cancelled, unless they opted out) and those with no open
-- dependency left become pending. Their change fires _900_notify_due_again, so a daemon claims
-- them as soon as this commits. A cancelled dependent runs this trigger in turn, so cancellation
-- runs down the whole graph; its reason names the job it waited for and, after a colon, why that
-- one was cancelled.
-- One call per UPDATE statement, over the rows it changed: a batch of 250 completions resolves
-- its dependents in three statements, not three per row (a row trigger per finished dependency
-- halved the rate of a burst in which one job in ten had a dependent). The transition table is
-- captured for every UPDATE already (the _200_count_updated trigger), so a statement that finished
-- no job with dependents pays one scan of its own rows; transition tables cannot be combined with
-- UPDATE OF or WHEN.
-- The dependents are locked in job_id order first. Two dependencies of one job finishing in two
-- transactions at once then take turns: the second waits for the first to commit, and its check,
-- a fresh snapshot, sees the first finished. Without the lock each saw the other still open and
-- the dependent waited forever.
CREATE OR REPLACE FUNCTION broadcast_queue_dependents_resolved() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  finished bigint[];
  broken bigint[];
BEGIN
  SELECT array_agg(job_id), array_agg(job_id) FILTER (WHERE status <> 'completed') INTO finished, broken
    FROM changed_rows WHERE has_dependents AND status IN ('completed', 'failed', 'cancelled');
  IF finished IS NULL THEN
    RETURN NULL;
  END IF;
  PERFORM 1 FROM broadcast_queue_jobs WHERE depends_on && finished AND status = 'waiting' ORDER BY job_id FOR UPDATE;
  IF broken IS NOT NULL THEN
    UPDATE broadcast_queue_jobs d
       SET status = 'cancelled', finished_at = now(), updated_at = now(),
           last_error = (SELECT left(format('dependency %s %s', f.job_id, f.status)
                                     || CASE WHEN f.status = 'cancelled' AND f.last_error LIKE 'dependency %' THEN ': ' || f.last_error ELSE '' END, 2000)
                           FROM changed_rows f WHERE f.job_id = ANY (d.depends_on) AND f.job_id = ANY (broken) ORDER BY f.job_id LIMIT 1)
     WHERE d.depends_on && broken AND d.status = 'waiting' AND d.on_dependency_failure = 'cancel';
  END IF;
  UPDATE broadcast_queue_jobs d
     SET status = 'pending', updated_at = now()
   WHERE d.depends_on && finished AND d.status = 'waiting'
     AND NOT EXISTS (SELECT 1 FROM broadcast_queue_jobs p
                      WHERE p.job_id = ANY (d.depends_on) AND p.status NOT IN ('completed', 'failed', 'cancelled'));
  RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS _300_dependents_resolved ON broadcast_queue_jobs;
CREATE TRIGGER _300_dependents_resolved
  AFTER UPDATE ON broadcast_queue_jobs
  REFERENCING NEW TABLE AS changed_rows
  FOR EACH STATEMENT EXECUTE FUNCTION broadcast_queue_dependents_resolved();

-- The dependencies of a job that have not finished yet (bqctl show, the API, getStatus()).
CREATE OR REPLACE FUNCTION broadcast_queue_open_dependencies(ids bigint[]) RETURNS bigint[]
LANGUAGE sql STABLE STRICT AS $$
  SELECT COALESCE(array_agg(job_id ORDER BY job_id), '{}')
    FROM broadcast_queue_jobs WHERE job_id = ANY (ids) AND status NOT IN ('completed', 'failed', 'cancelled')
$$;
COMMIT;
-- migrate: step
ALTER TABLE broadcast_queue_jobs VALIDATE CONSTRAINT broadcast_queue_jobs_status_valid;
-- migrate: step
ALTER TABLE broadcast_queue_jobs VALIDATE CONSTRAINT broadcast_queue_jobs_on_dependency_failure_valid;
-- migrate: step
ALTER TABLE broadcast_queue_jobs VALIDATE CONSTRAINT broadcast_queue_jobs_depends_on_at_most_1000;
-- migrate: step
-- The resolver's lookup: waiting jobs by the ids they depend on. Only waiting rows are in it.
CREATE INDEX CONCURRENTLY IF NOT EXISTS broadcast_queue_jobs_waiting_on_idx
  ON broadcast_queue_jobs USING gin (depends_on)
  WHERE status = 'waiting';
-- migrate: step
-- Waiting jobs per queue, for /status, bqctl status and /metrics (job-counts.ts).
CREATE INDEX CONCURRENTLY IF NOT EXISTS broadcast_queue_jobs_waiting_idx
  ON broadcast_queue_jobs (queue, job_id)
  WHERE status = 'waiting';
-- migrate: step
-- A waiting job is unfinished: it holds its job_key like a pending one. The index is rebuilt under
-- a new name, the old one dropped, the new one given the old name (errors keep naming it). Every
-- ON CONFLICT (job_key) WHERE … status IN ('pending', 'processing') still infers it: that
-- predicate implies the wider one.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS broadcast_queue_jobs_job_key_open_idx
  ON broadcast_queue_jobs (job_key)
  WHERE job_key IS NOT NULL AND status IN ('waiting', 'pending', 'processing');
-- migrate: step
DROP INDEX CONCURRENTLY IF EXISTS broadcast_queue_jobs_job_key_unfinished_idx;
-- migrate: step
ALTER INDEX IF EXISTS broadcast_queue_jobs_job_key_open_idx RENAME TO broadcast_queue_jobs_job_key_unfinished_idx;
