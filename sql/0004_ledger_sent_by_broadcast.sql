-- Sent rows by broadcast and time. The progress rate (`recent_sent`: sends in the last seconds, read
-- by `bqctl watch` every 500 ms and by /status) counted every row of the broadcast through the
-- primary key: 60 ms at 200k recipients. The 24-hour statistics read the whole ledger, which only
-- grows; they now go broadcast by broadcast through this index too (src/http/admin-queries.ts).
CREATE INDEX broadcast_deliveries_sent_by_broadcast_idx
  ON broadcast_deliveries (broadcast_id, sent_at)
  WHERE status = 'sent';
