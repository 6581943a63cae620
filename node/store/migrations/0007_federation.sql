-- Schema 7: the federation object store (SQL in ftm.federation.objectstore; format in docs/federation-events.md).
-- Every accepted event, exactly as received: body and signature verify on their own, so a peer fetching from us
-- checks them as it would the author's. `content` is NULL once dropped (moderation, a tombstone); the id stays, so
-- set reconciliation still sees the event. `origin` is the peer that sent it (its node key), NULL if made here.
CREATE TABLE federation_events (
    id          BLOB PRIMARY KEY CHECK (length(id) = 32),
    kind        INTEGER NOT NULL,
    author      BLOB NOT NULL CHECK (length(author) = 32),
    created_at  INTEGER NOT NULL,
    body        BLOB NOT NULL,
    signature   BLOB NOT NULL,
    content     BLOB,
    received_at INTEGER NOT NULL,
    origin      BLOB
) STRICT;
CREATE INDEX federation_events_by_time ON federation_events (created_at, id);
-- By author, on the key's first 8 bytes: authors are random keys, so this index takes writes all over the file,
-- and a short key halves its cost per insert (measured: 27 -> 19 us CPU per event). Queries match the prefix and
-- then the whole key.
CREATE INDEX federation_events_by_author ON federation_events (substr(author, 1, 8), created_at);
CREATE INDEX federation_events_by_kind ON federation_events (kind, created_at, id);

-- The latest hosting attestation each node made for each resident key, from accepted HOSTING events. Whether the
-- node is one we know is decided when the attestation is used, not when it is stored.
CREATE TABLE federation_attestations (
    resident_key BLOB NOT NULL,
    node_key     BLOB NOT NULL,
    node_url     TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    event_id     BLOB NOT NULL,
    PRIMARY KEY (resident_key, node_key)
) STRICT, WITHOUT ROWID;

-- Resident keys that are gone for good, from accepted TOMBSTONE events (the earliest one counts).
CREATE TABLE federation_tombstones (
    resident_key BLOB PRIMARY KEY,
    created_at   INTEGER NOT NULL,
    event_id     BLOB NOT NULL
) STRICT, WITHOUT ROWID;
