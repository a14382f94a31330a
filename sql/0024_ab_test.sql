-- Test, then send the winner (issue 14): a broadcast with ab_test sends its variants to a random
-- sample of its audience, waits decide_after, then sends one variant to everyone else: the winner
-- of the report's test on the sample, or the fallback when no variant won. One broadcast, one
-- ledger. From psql:
--   INSERT INTO broadcasts (title, variants, audience, track, ab_test)
--   VALUES ('Spring', '[{"name": "A", "weight": 1, "message": {...}}, {"name": "B", "weight": 1, "message": {...}}]',
--           '{}', true, '{"sample_percent": 10, "metric": "ctr", "decide_after": "2h", "fallback": "A"}');
--
-- The fan-out writes every recipient's row: the sample's with their variant, due at once; the
-- rest's with variant NULL, due at ab_decide_at. The claim takes no NULL-variant row of a
-- broadcast whose ab_test is undecided (ledger.ts), so none of the rest is sent before the
-- decision, and after it the rest's rows keep variant NULL: the report tells sample from rest by
-- it, and ab_sent_variant names what they got. The field's contents are checked by the engine
-- (broadcast/ab-test.ts), which fails the broadcast with the reason, as for a bad message.
--
-- New nullable columns: catalogue changes, no rewrite.
ALTER TABLE broadcasts
  ADD COLUMN IF NOT EXISTS ab_test jsonb
    CONSTRAINT broadcasts_ab_test_is_object CHECK (ab_test IS NULL OR jsonb_typeof(ab_test) = 'object'),
  -- Set by the fan-out: its moment plus decide_after.
  ADD COLUMN IF NOT EXISTS ab_decide_at timestamptz,
  -- Set once, by the run that decided (driver-guarded, under the row lock).
  ADD COLUMN IF NOT EXISTS ab_decided_at timestamptz,
  -- The variant whose difference was significant, or NULL: none was, and the rest got the fallback.
  ADD COLUMN IF NOT EXISTS ab_winner text,
  ADD COLUMN IF NOT EXISTS ab_p_value float8,
  -- What the rest of the audience is sent: ab_winner, or the fallback.
  ADD COLUMN IF NOT EXISTS ab_sent_variant text;
