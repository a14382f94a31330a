-- A schedule added, resumed or brought forward by another process (psql, bqctl against a running
-- daemon) wakes every daemon's ticker at once instead of at its next re-read (up to 30 s later,
-- src/schedules/ticker.ts), which could make a new schedule's first tick late or, for a row
-- inserted with next_run_at NULL, miss the ticks before the re-read. As for jobs, the NOTIFY is
-- only a hint: the re-read stays, and a listener that reconnects wakes the ticker too.
--
-- Statement triggers with transition tables, so a bulk INSERT notifies once, and only for changes
-- a sleeping ticker must see: the ticker's own statements (taking a tick moves next_run_at later;
-- filling in a NULL one) notify nobody, or every tick would wake every daemon for nothing.
-- A trigger with transition tables can serve one event only, hence two.
CREATE FUNCTION broadcast_queue_schedules_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF EXISTS (SELECT 1 FROM new_schedules WHERE enabled) THEN
      PERFORM pg_notify('broadcast_queue_schedules', '');
    END IF;
  ELSIF EXISTS (
    SELECT 1 FROM new_schedules n LEFT JOIN old_schedules o ON o.name = n.name
     WHERE n.enabled
       AND (o.name IS NULL OR NOT o.enabled OR n.cron IS DISTINCT FROM o.cron OR n.time_zone IS DISTINCT FROM o.time_zone
            OR (n.next_run_at IS NULL AND o.next_run_at IS NOT NULL) OR n.next_run_at < o.next_run_at)
  ) THEN
    PERFORM pg_notify('broadcast_queue_schedules', '');
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER _900_schedules_inserted
  AFTER INSERT ON broadcast_queue_schedules
  REFERENCING NEW TABLE AS new_schedules
  FOR EACH STATEMENT EXECUTE FUNCTION broadcast_queue_schedules_changed();

CREATE TRIGGER _900_schedules_updated
  AFTER UPDATE ON broadcast_queue_schedules
  REFERENCING OLD TABLE AS old_schedules NEW TABLE AS new_schedules
  FOR EACH STATEMENT EXECUTE FUNCTION broadcast_queue_schedules_changed();
