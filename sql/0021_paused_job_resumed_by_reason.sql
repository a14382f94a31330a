-- The _400_paused_job_resumed trigger (sql/0005) picked out a paused broadcast's snooze by its
-- message, last_error = 'broadcast paused': a sentence written in src/broadcast/engine.ts, matched
-- here word for word. Since sql/0017 the snooze also records its reason code, 'paused', in
-- last_error_reason, and that is what the trigger keys on now; the message can be reworded freely.
-- The function and every other condition are unchanged. Dropping and creating a trigger takes a
-- brief lock on the jobs table and rewrites no row.
DROP TRIGGER IF EXISTS _400_paused_job_resumed ON broadcast_queue_jobs;

CREATE TRIGGER _400_paused_job_resumed
  BEFORE UPDATE ON broadcast_queue_jobs
  FOR EACH ROW
  WHEN (OLD.status = 'processing' AND NEW.status = 'pending' AND NEW.job_type = 'broadcast'
        AND NEW.last_error_reason = 'paused' AND NEW.run_at > now())
  EXECUTE FUNCTION broadcast_queue_paused_job_resumed();
