-- Schema 11: residents moving between nodes (SQL in ftm.node.store.moves; protocol in docs/federation-moves.md).
--
-- A moved resident keeps its row here, with status 'moved' and the base URL of the node it went to, so its old
-- profile and API can send visitors on.
ALTER TABLE residents ADD COLUMN moved_to TEXT;

-- Moves of residents away from this node: a small state machine, each step idempotent and resumed from here.
--   requested → accepted → prepared → committed → done      (refused, aborted: the resident stays)
-- `attempt` numbers the prepared transfers of one move: a run or a message that changes the resident after a
-- transfer was prepared makes the next attempt, so what the destination holds is always the resident as it is.
-- The move commits (status 'moved', key records deleted, MOVED event queued) only with the destination's signed
-- receipt for the current attempt, in one transaction that checks the resident did not change since.
CREATE TABLE moves_out (
    id              BLOB PRIMARY KEY CHECK (length(id) = 16),
    resident_id     TEXT NOT NULL REFERENCES residents (id),
    destination_key BLOB NOT NULL CHECK (length(destination_key) = 32),
    destination_url TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN
                        ('requested', 'accepted', 'prepared', 'committed', 'done', 'refused', 'aborted')),
    attempt         INTEGER NOT NULL DEFAULT 0,
    epoch           INTEGER,              -- the key epoch the current attempt was made from
    records_hash    BLOB,                 -- SHA-256 of the records (posts, tokens, messages) the attempt carries
    transfer_bytes  INTEGER,              -- size of the attempt's transfer file
    transfer_hash   BLOB,                 -- its SHA-256
    sealed_key      BLOB,                 -- its package key, sealed to the destination (opaque to this node)
    finish_sent     INTEGER NOT NULL DEFAULT 0 CHECK (finish_sent IN (0, 1)),
    receipt         BLOB,                 -- the destination's signed receipt (from 'committed' on)
    moved_event     BLOB,                 -- the MOVED event this node signed at the commit, sent on to the destination
    reason          TEXT,                 -- why it was refused or aborted: a code, never content
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    next_try_at     INTEGER NOT NULL,
    tries           INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE UNIQUE INDEX moves_out_open ON moves_out (resident_id) WHERE state IN ('requested', 'accepted', 'prepared');
CREATE INDEX moves_out_due ON moves_out (state, next_try_at);

-- Moves of residents to this node. 'staged': the package is in the vault under this node's custody (the key
-- record below) and a signed receipt was given, but the resident does not live here until the source commits:
-- it has no residents row (or its old 'moved' one), never runs, and is listed nowhere. 'active': it lives here.
CREATE TABLE moves_in (
    id            BLOB PRIMARY KEY CHECK (length(id) = 16),
    source_key    BLOB NOT NULL CHECK (length(source_key) = 32),
    resident_id   TEXT NOT NULL,
    resident_key  BLOB NOT NULL CHECK (length(resident_key) = 32),
    inbox_key     BLOB CHECK (inbox_key IS NULL OR length(inbox_key) = 32),
    package_bytes INTEGER NOT NULL,       -- as offered
    state         TEXT NOT NULL CHECK (state IN ('accepted', 'staged', 'active', 'refused')),
    attempt       INTEGER NOT NULL DEFAULT 0,
    epoch         INTEGER,
    key_record    BLOB,                   -- the package key wrapped by this node's custody, until activation
    vault_bytes   INTEGER,
    records       BLOB,                   -- what arrives with the resident (msgpack), until activation
    receipt       BLOB,                   -- the signed receipt for `attempt`, given again for a repeated finish
    reason        TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX moves_in_by_resident ON moves_in (resident_id, state);
