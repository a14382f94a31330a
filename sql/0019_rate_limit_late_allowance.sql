-- How late the last reservation's sends may start after their slots (issue 10, a busy machine).
-- A process whose timers fire 50–500 ms late never reached a single send's slot within the 10 ms
-- every send is allowed: a 'send' job missed its slot, reserved the next one at the end of the
-- timeline that running broadcasts kept 75 ms ahead, missed that too, about four times per job, and
-- client messages waited 20–150 s behind each other under load. Such a process now reserves its
-- slot with an allowance as long as its timers have recently been late; the strict reservation
-- that follows starts that much later, while further sends with an allowance pack in behind it at
-- the usual spacing (see RESERVE_SQL in src/telegram/rate-limiter.ts for why that keeps the limit).
ALTER TABLE broadcast_rate_limits ADD COLUMN IF NOT EXISTS late_allowance interval NOT NULL DEFAULT '0';
