-- Engagement (issue 14): what recipients did with a broadcast, and the subscriber list the bot keeps
-- itself from the updates it receives (src/engagement/).

-- When the subscriber last opted out or back in (/stop, /start): an opt-out within 72 h of a
-- broadcast is attributed to it.
ALTER TABLE broadcast_subscribers ADD COLUMN IF NOT EXISTS opted_out_at timestamptz;

-- Tracked links and buttons (track: true): each recipient's links point at the public redirect
-- listener, whose tokens name the broadcast, the recipient and the link (src/engagement/token.ts).
ALTER TABLE broadcasts ADD COLUMN IF NOT EXISTS track boolean NOT NULL DEFAULT false;

-- One row per thing a recipient did: followed a tracked link ('click'), pressed a tracked callback
-- button ('press'), replied to or reacted to the broadcast message ('reply', 'reaction'), opted out
-- or blocked the bot within 72 h of receiving it ('opt_out', 'block'). link_index is the position
-- in the broadcast's list of distinct links (clicks) or buttons (presses). Rows are written in
-- batches by the redirect listener and the update middleware, never one statement per event.
-- There is no row per link per recipient before anything happens: the token carries that.
CREATE TABLE IF NOT EXISTS broadcast_engagement (
  broadcast_id  bigint      NOT NULL REFERENCES broadcasts ON DELETE CASCADE,
  chat_id       bigint      NOT NULL,
  kind          text        NOT NULL,
  link_index    smallint,
  at            timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT broadcast_engagement_kind_valid
    CHECK (kind IN ('click', 'press', 'reply', 'reaction', 'opt_out', 'block')),
  CONSTRAINT broadcast_engagement_link_index_valid
    CHECK ((kind IN ('click', 'press')) = (link_index IS NOT NULL) AND (link_index IS NULL OR link_index >= 0))
);

-- Serves the report (one broadcast's events by kind) and the cascade when retention deletes a broadcast.
CREATE INDEX IF NOT EXISTS broadcast_engagement_broadcast_idx ON broadcast_engagement (broadcast_id, kind);
