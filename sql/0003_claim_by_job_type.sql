-- The claim index gains job_type. Without it, a daemon that does not run the job type of a large
-- backlog (a halted bot token leaves every 'send' pending; a daemon may run only your own types)
-- walked past every row of that backlog on each claim: 24 ms per claim at 200k pending sends,
-- growing with the backlog. The claim now scans one index range per queue and job type
-- (src/queue/claimer.ts). Built inside the migration's transaction, so inserts wait for the
-- build: seconds for a million pending jobs.
CREATE INDEX broadcast_queue_jobs_claim_by_type_idx
  ON broadcast_queue_jobs (queue, job_type, priority DESC, run_at, job_id)
  WHERE status = 'pending';

DROP INDEX broadcast_queue_jobs_claim_idx;
