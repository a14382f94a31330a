-- Bounds on what one row may hold, a bounded view of a row for every reader, and the webhook job
-- each finished broadcast enqueued (issue 11).

-- Payload size. Measured: an inline broadcast to 1,000,000 chat ids of 13 digits (supergroup ids,
-- -100…) is 16 MB of JSON text and 20 MB as jsonb (pg_column_size, what this checks: O(1), no
-- conversion to text). 32 MiB leaves room for that and a message; an audience larger than that
-- belongs in broadcast_subscribers and a segment ({"audience": {"tags_any": [...]}}), which the
-- fan-out reads set-wise without a payload at all. Before this, one INSERT of 2M ids held ~40 MB
-- per job and every reader loaded it whole.
-- NOT VALID: rows already stored are not scanned (no long lock on a big table); new rows and
-- updates are checked. An update sees a stored value's compressed size, so an older large row can
-- still be claimed and finished.
ALTER TABLE broadcast_queue_jobs
  ADD CONSTRAINT broadcast_queue_jobs_payload_at_most_32_mib_use_subscribers
  CHECK (pg_column_size(payload) <= 33554432) NOT VALID;
ALTER TABLE broadcasts
  ADD CONSTRAINT broadcasts_audience_at_most_32_mib_use_subscribers
  CHECK (pg_column_size(audience) <= 33554432) NOT VALID;
-- A Bot API message is at most 4096 characters of text plus entities and a keyboard; 1 MiB is
-- generous for the message and for all A/B variants together.
ALTER TABLE broadcasts
  ADD CONSTRAINT broadcasts_message_and_variants_at_most_1_mib
  CHECK (COALESCE(pg_column_size(message), 0) + COALESCE(pg_column_size(variants), 0) <= 1048576) NOT VALID;

-- A bounded view of a jsonb value for readers (admin API, bqctl): the value itself when it is at
-- most max_bytes, else an object with its small entries kept, arrays replaced by "<key>_count",
-- objects summarised the same way one level down (a quarter of the room each), other big values
-- by "<key>_bytes", and "_keys_left_out" once the room is used up. It runs in the database, so a
-- 20 MB payload never crosses the wire to be cut down. At most about 1.25 × max_bytes.
CREATE FUNCTION broadcast_queue_brief(value jsonb, max_bytes integer) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
  brief jsonb := '{}';
  entry record;
  kept integer := 0;
BEGIN
  -- pg_column_compression: a compressed value's stored size says nothing of its real size.
  IF value IS NULL OR (pg_column_compression(value) IS NULL AND pg_column_size(value) <= max_bytes) THEN
    RETURN value;
  END IF;
  IF jsonb_typeof(value) = 'array' THEN
    RETURN jsonb_build_object('_count', jsonb_array_length(value));
  ELSIF jsonb_typeof(value) <> 'object' THEN
    RETURN jsonb_build_object('_bytes', pg_column_size(value));
  END IF;
  FOR entry IN SELECT e.key, e.value FROM jsonb_each(value) e LOOP
    IF pg_column_size(brief) >= max_bytes THEN
      RETURN brief || jsonb_build_object('_keys_left_out', (SELECT count(*) FROM jsonb_object_keys(value)) - kept);
    END IF;
    IF pg_column_size(entry.value) <= max_bytes / 4 THEN
      brief := brief || jsonb_build_object(entry.key, entry.value);
    ELSIF jsonb_typeof(entry.value) = 'array' THEN
      brief := brief || jsonb_build_object(entry.key || '_count', jsonb_array_length(entry.value));
    ELSIF jsonb_typeof(entry.value) = 'object' THEN
      brief := brief || jsonb_build_object(entry.key, broadcast_queue_brief(entry.value, max_bytes / 4));
    ELSE
      brief := brief || jsonb_build_object(entry.key || '_bytes', pg_column_size(entry.value));
    END IF;
    kept := kept + 1;
  END LOOP;
  RETURN brief;
END
$$;

-- The 'webhook' job the daemon enqueued in the statement that finished this broadcast. A webhook
-- job is signed and sent only if it is the one named here, and its body is built from this row
-- at send time: whoever can INSERT a job cannot get a body of their choosing signed.
ALTER TABLE broadcasts ADD COLUMN webhook_job_id bigint;

-- Webhook jobs queued before this migration carry the old body ({"event", "broadcast": {…},
-- "variants"}) and no webhook_job_id names them, so webhookBody() would fail every one of them.
-- Rewritten to carry only the id, and named by their broadcast (job_key 'webhook:broadcast:<id>',
-- as the engine enqueued them), they are sent as the daemon would send them now.
UPDATE broadcast_queue_jobs
   SET payload = jsonb_build_object('event', 'broadcast.finished', 'broadcast_id', (payload -> 'broadcast' ->> 'broadcast_id')::bigint)
 WHERE job_type = 'webhook' AND status IN ('pending', 'processing')
   AND NOT payload ? 'broadcast_id' AND payload -> 'broadcast' ->> 'broadcast_id' ~ '^[0-9]{1,18}$';
UPDATE broadcasts b
   SET webhook_job_id = j.job_id
  FROM broadcast_queue_jobs j
 WHERE j.job_type = 'webhook' AND j.status IN ('pending', 'processing')
   AND j.job_key = 'webhook:broadcast:' || b.broadcast_id
   AND j.payload ->> 'broadcast_id' = b.broadcast_id::text;
