-- Broadcast messages sent, counted by the minute as outcomes are written, so that /statistics's
-- messages_sent_last_hour and messages_sent_last_24h cost what is active, not what is kept. They
-- counted the ledger's sent rows of the last 24 hours, broadcast by broadcast: a cost that grew
-- with the size of the day's broadcasts (1,000,000 recipients: a million index entries per read).
--
-- The ledger's outcome write (LEDGER_RECORD_SQL, src/broadcast/ledger.ts) appends one row per batch
-- that sent anything, in the statement that marks the rows sent: no trigger on the hot path, and no
-- shared counter row for concurrent broadcasts to wait on. broadcast_queue_roll_up_counts() (the
-- sweep, every 30 s) folds the rows into one per minute and drops minutes older than 25 hours, so a
-- read sums at most about 1,500 small rows. A ledger row set to 'sent' by SQL written by hand is
-- not counted.
CREATE TABLE IF NOT EXISTS broadcast_messages_sent (
  minute    timestamptz NOT NULL,
  messages  bigint      NOT NULL
);

-- 0007's roll-up, plus the sent minutes. Two roll-ups at once are safe for the same reason.
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
  WITH gone AS (DELETE FROM broadcast_messages_sent RETURNING *)
  INSERT INTO broadcast_messages_sent (minute, messages)
  SELECT minute, sum(messages) FROM gone
   WHERE minute > now() - interval '25 hours'
   GROUP BY 1 HAVING sum(messages) <> 0;
$$;

-- The messages sent in the last 25 hours before this migration, counted once from the ledger,
-- broadcast by broadcast through the sent index (0004). The table is new and no writer sees it
-- before this transaction commits, so nothing is counted twice.
INSERT INTO broadcast_messages_sent (minute, messages)
SELECT date_trunc('minute', d.sent_at), count(*)
  FROM broadcasts b
  JOIN broadcast_deliveries d ON d.broadcast_id = b.broadcast_id AND d.status = 'sent' AND d.sent_at > now() - interval '25 hours'
 WHERE b.started_at IS NOT NULL AND (b.finished_at IS NULL OR b.finished_at > now() - interval '25 hours')
 GROUP BY 1;
