-- The keeper's store (ftm.keeper.store): the hosts it serves, the epochs it holds for them, what it released,
-- the claims it accepted, tombstones, challenges answered, and its signed event log. No secret is stored in
-- the clear: `sealed_share` is the share exactly as the host sealed it to this keeper's key, and it is wiped
-- (set to an empty blob; secure_delete zeroes the freed pages) when the epoch is destroyed.

CREATE TABLE hosts (
    key          BLOB PRIMARY KEY,                  -- the host node's Ed25519 key, pinned at enrolment
    url          TEXT NOT NULL,
    keeper_id    TEXT NOT NULL DEFAULT '',          -- the Keeper registration at that node ('' if added by hand)
    enrolled_at  INTEGER NOT NULL,
    last_heard   INTEGER NOT NULL,                  -- the latest request the host signed (heartbeats included)
    refusals     INTEGER NOT NULL DEFAULT 0         -- refusals concerning its residents not yet reported to it
) STRICT;

CREATE TABLE deposits (
    host_key           BLOB NOT NULL REFERENCES hosts (key),
    resident_id        TEXT NOT NULL,
    epoch              INTEGER NOT NULL,
    resident_key       BLOB NOT NULL,
    threshold          INTEGER NOT NULL,
    x                  INTEGER NOT NULL,
    commitments        BLOB NOT NULL,               -- shares.Commitments encoded ('' once destroyed)
    sealed_share       BLOB NOT NULL,               -- as received ('' once destroyed)
    window_start       INTEGER NOT NULL,            -- UTC second of the day
    window_length      INTEGER NOT NULL,            -- seconds
    guardians          BLOB NOT NULL,               -- 32-byte keys, concatenated
    guardian_threshold INTEGER NOT NULL,
    length             INTEGER NOT NULL,
    root               BLOB NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('deposited', 'held', 'committed', 'destroyed')),
    destroy_reason     TEXT NOT NULL DEFAULT '',
    deposited_at       INTEGER NOT NULL,
    held_at            INTEGER,
    committed_at       INTEGER,
    destroyed_at       INTEGER,
    PRIMARY KEY (host_key, resident_id, epoch)
) STRICT;
CREATE INDEX deposits_by_resident ON deposits (resident_id, epoch);

-- One row per grant: an epoch is released at most once per (purpose, claim), to one ephemeral key. A run's
-- request repeated with that same key is answered again (logged, no new row); any other key is refused.
CREATE TABLE releases (
    id            INTEGER PRIMARY KEY,
    host_key      BLOB NOT NULL,
    resident_id   TEXT NOT NULL,
    epoch         INTEGER NOT NULL,
    purpose       TEXT NOT NULL,
    claim_id      BLOB NOT NULL,                    -- '' for a run
    ephemeral_key BLOB NOT NULL CHECK (length(ephemeral_key) = 32),  -- the X25519 key the share was sealed to
    requester_key BLOB NOT NULL,
    at            INTEGER NOT NULL,
    UNIQUE (host_key, resident_id, epoch, purpose, claim_id)
) STRICT;

-- Move and disaster claims, one row per resident a claim concerns (a disaster claim may name several).
CREATE TABLE claims (
    claim_id         BLOB NOT NULL,                 -- SHA-256 of the body
    resident_id      TEXT NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('move', 'disaster')),
    body             BLOB NOT NULL,                 -- MoveTerms or DisasterTerms, as signed
    signatures       BLOB NOT NULL,                 -- the ClaimSignatures received, encoded
    host_key         BLOB NOT NULL,                 -- the host the claim was made against
    counterpart_key  BLOB NOT NULL,                 -- the destination, or the new host
    counterpart_url  TEXT NOT NULL,
    guardian_signers BLOB NOT NULL,                 -- 32-byte keys, concatenated ('' for a move)
    opened_at        INTEGER NOT NULL,
    release_after    INTEGER NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('open', 'vetoed', 'cancelled')),
    vetoed_by        BLOB,
    closed_at        INTEGER,
    PRIMARY KEY (claim_id, resident_id)
) STRICT;
CREATE INDEX claims_by_resident ON claims (resident_id, kind, opened_at);

CREATE TABLE tombstones (
    resident_id  TEXT PRIMARY KEY,
    resident_key BLOB NOT NULL,
    event_id     BLOB NOT NULL,                     -- the TOMBSTONE event the resident signed
    at           INTEGER NOT NULL
) STRICT;

CREATE TABLE challenges (
    id          INTEGER PRIMARY KEY,
    host_key    BLOB NOT NULL,
    resident_id TEXT NOT NULL,
    epoch       INTEGER NOT NULL,
    nonce       BLOB NOT NULL,
    samples     INTEGER NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('answered', 'damaged')),
    leaf        INTEGER,                            -- the damaged leaf, when one is named
    at          INTEGER NOT NULL
) STRICT;
CREATE INDEX challenges_by_epoch ON challenges (host_key, resident_id, epoch, at);

-- The signed, hash-chained log of every decision (ftm.federation.eventlog), as in the node's schema.
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
