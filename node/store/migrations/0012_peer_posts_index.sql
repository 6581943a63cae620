-- Schema 12: an index of peers' posts alone, for the federated feed (ftm.node.store.federatedreads).
--
-- The feed pages through POST events that came from other nodes, newest first. The index of all events by kind
-- has the same order but also holds every post made here, which a page had to step over one by one: 30 ms and
-- more at 20,000 local posts. This one holds only what the feed shows. Its WHERE matches the feed's terms
-- word for word, as SQLite requires of a partial index.
CREATE INDEX federation_events_peer_posts ON federation_events (created_at, id)
    WHERE kind = 1 AND content IS NOT NULL AND origin IS NOT NULL;
