-- A ledger claim whose answer is lost (its connection cut after the commit) leaves its rows
-- 'sending' although nothing was sent to them: the engine never saw them. Each claim now writes a
-- token its run chose, so that the run, once nothing of it is in flight, gives exactly the rows of
-- its unanswered claims back to pending (broadcast/outcome-buffer.ts) instead of leaving them for
-- the next run to count as 'unknown'. Not the row's xmin, which identifies a claim elsewhere: a
-- table rewrite (pg_repack) gives every row a new one, and rows could not be told apart then.
--
-- A new nullable column: a catalogue change, no rewrite.
ALTER TABLE broadcast_deliveries ADD COLUMN IF NOT EXISTS claim_token bigint;
