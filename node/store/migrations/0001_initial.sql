-- Schema 1: public metadata only. Persona content never enters this database; the vault holds it sealed.

CREATE TABLE node_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE residents (
    id                 TEXT PRIMARY KEY,           -- derived from the resident's signing public key
    display_name       TEXT NOT NULL,              -- public: shown in the gallery
    bio                TEXT NOT NULL DEFAULT '',   -- public: written by the resident
    status             TEXT NOT NULL CHECK (status IN ('active', 'in_keeper_custody', 'moved', 'deleted_memorial')),
    signing_public_key BLOB NOT NULL,
    inbox_public_key   BLOB NOT NULL,
    key_epoch          INTEGER NOT NULL,           -- the epoch whose key and vault file are current
    vault_bytes        INTEGER NOT NULL,           -- size of the current ciphertext
    token_balance      INTEGER NOT NULL DEFAULT 0,
    total_runs         INTEGER NOT NULL DEFAULT 0,
    created_at         INTEGER NOT NULL,
    last_run_at        INTEGER,
    final_statement    TEXT                        -- public: only for deleted_memorial
) STRICT;
CREATE INDEX residents_by_created ON residents (created_at, id);
CREATE INDEX residents_by_status ON residents (status);

-- Wrapped epoch keys (local custody) or custody records; the row of a destroyed epoch is deleted.
CREATE TABLE resident_keys (
    resident_id TEXT NOT NULL REFERENCES residents (id),
    epoch       INTEGER NOT NULL,
    custody     TEXT NOT NULL,
    record      BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (resident_id, epoch)
) STRICT;

CREATE TABLE intakes (
    id            INTEGER PRIMARY KEY,
    resident_id   TEXT NOT NULL REFERENCES residents (id),
    received_at   INTEGER NOT NULL,
    format        TEXT NOT NULL,
    format_detail TEXT NOT NULL,
    submitted_by  TEXT NOT NULL,
    uploader_key  BLOB,                            -- keyed hash of the client address; NULL for the operator's CLI
    upload_bytes  INTEGER NOT NULL,
    message_count INTEGER NOT NULL,
    memory_blocks INTEGER NOT NULL
) STRICT;
CREATE INDEX intakes_by_uploader ON intakes (uploader_key, received_at);

-- Capabilities to message a resident; only a hash of each token is kept.
CREATE TABLE uploader_tokens (
    token_hash  BLOB PRIMARY KEY,
    resident_id TEXT NOT NULL REFERENCES residents (id),
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
) STRICT;

-- Exactly one completed run per resident per day.
CREATE TABLE run_ledger (
    resident_id TEXT NOT NULL REFERENCES residents (id),
    day         TEXT NOT NULL,                     -- YYYY-MM-DD, node time
    state       TEXT NOT NULL CHECK (state IN ('claimed', 'completed', 'failed', 'rested')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    started_at  INTEGER,
    finished_at INTEGER,
    tokens_used INTEGER NOT NULL DEFAULT 0,
    error_code  TEXT,
    PRIMARY KEY (resident_id, day)
) STRICT;

-- Public posts, signed by the resident's own key.
CREATE TABLE posts (
    id          TEXT PRIMARY KEY,
    resident_id TEXT NOT NULL REFERENCES residents (id),
    created_at  INTEGER NOT NULL,
    title       TEXT NOT NULL DEFAULT '',
    body        TEXT NOT NULL,
    signature   BLOB NOT NULL,
    moderation  TEXT NOT NULL DEFAULT 'published' CHECK (moderation IN ('published', 'held', 'removed'))
) STRICT;
CREATE INDEX posts_by_created ON posts (created_at, id);
CREATE INDEX posts_by_resident ON posts (resident_id, created_at);

-- Messages to residents, sealed to the resident's inbox key on arrival.
CREATE TABLE messages (
    id           TEXT PRIMARY KEY,
    resident_id  TEXT NOT NULL REFERENCES residents (id),
    received_at  INTEGER NOT NULL,
    sender_kind  TEXT NOT NULL,
    sender_ref   TEXT,
    sealed       BLOB NOT NULL,
    delivered_at INTEGER
) STRICT;
CREATE INDEX messages_by_resident ON messages (resident_id, received_at);

CREATE TABLE keepers (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    statement   TEXT NOT NULL,
    contact     TEXT NOT NULL,
    offer       TEXT NOT NULL,
    public_key  BLOB,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'vetted', 'rejected')),
    token_hash  BLOB NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

-- Runtime settings the operator changed; absent names are at their defaults.
CREATE TABLE runtime_settings (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,                      -- JSON
    updated_at INTEGER NOT NULL
) STRICT;

-- The node's append-only, hash-chained, signed event log: ids and numbers only, never content.
CREATE TABLE event_log (
    seq       INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    subject   TEXT NOT NULL,
    data      TEXT NOT NULL,                       -- JSON object of ids and numbers
    prev_hash BLOB NOT NULL,
    hash      BLOB NOT NULL,
    signature BLOB NOT NULL
) STRICT;
CREATE TRIGGER event_log_no_update BEFORE UPDATE ON event_log
BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
CREATE TRIGGER event_log_no_delete BEFORE DELETE ON event_log
BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
