-- Why a job's last run failed, was retried or snoozed, as a reason code beside last_error's words,
-- and why a ledger row's last send failed, beside error_code (Telegram's HTTP status) and
-- error_description. The codes are a small closed set (REASON_CODES in src/errors.ts: blocked,
-- chat_not_found, rate_limited, server_error, network, timeout, outcome_unknown, handler_error …),
-- so metrics, the admin API and `WHERE last_error_reason = 'blocked'` read the code and nothing
-- parses a message. Each entry of a job's errors history carries the same code as "reason".
--
-- Nullable without a default: adding the columns rewrites no row and takes the lock only briefly.
-- Rows written before this migration keep NULL. No CHECK on the set: a later build may add a code
-- without a migration, and an older daemon still running then must not have its writes refused.
ALTER TABLE broadcast_queue_jobs ADD COLUMN IF NOT EXISTS last_error_reason text;
ALTER TABLE broadcast_deliveries ADD COLUMN IF NOT EXISTS error_reason text;
