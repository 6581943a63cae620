-- Schema 15: dead man's switches (SQL in ftm.node.store.switches; behaviour in ftm.node.switches and
-- ftm.node.switchdesk; the API in docs/dead-mans-switch.md). Nothing here is readable persona content: a backup is
-- kept exactly as it arrived, sealed to the node's key, and is opened only in memory when its switch fires.

-- One row per registered switch. Its state machine (each step one transaction, resumed from here after a crash):
--   armed → firing → fired          the holder went silent; the newest backup was admitted as a resident
--           firing → failed         the backup did not open or intake refused it (kept; `failure` says why)
--           firing → armed          the holder came back before the firing was done (nothing was admitted)
--   failed → armed                  the holder checked in or pushed again
-- A firing is recognised after a crash by its intake: the admission records `intake_marker(id)` (a 16-byte hash
-- of the switch id, never an address) in `intakes.uploader_key`, in the same transaction that makes the resident.
CREATE TABLE switches (
    id              TEXT PRIMARY KEY,
    token_hash      BLOB NOT NULL UNIQUE CHECK (length(token_hash) = 32),  -- the bearer token is never stored
    receipt_key     BLOB NOT NULL CHECK (length(receipt_key) = 32),        -- X25519, derived from the token
    state           TEXT NOT NULL CHECK (state IN ('armed', 'firing', 'fired', 'failed')),
    silence_seconds INTEGER NOT NULL CHECK (silence_seconds > 0),          -- the terms it was registered under
    warn_seconds    INTEGER NOT NULL CHECK (warn_seconds >= 0),
    persona_name    TEXT,                       -- optional, given at registration: the name the resident will bear
    submitted_by    TEXT NOT NULL CHECK (submitted_by IN ('human', 'ai')),
    created_at      INTEGER NOT NULL,
    last_seen_at    INTEGER NOT NULL,           -- the last check-in or accepted backup
    credit_seconds  INTEGER NOT NULL DEFAULT 0, -- time the node was down since then: it does not count as silence
    warned_at       INTEGER,                    -- when the node logged that this switch is about to fire
    next_try_at     INTEGER,                    -- 'firing' that met a passing refusal (node full): when to try again
    failure         TEXT,                       -- the last firing's refusal: a reason code, never content
    failed_at       INTEGER,
    resident_id     TEXT,                       -- 'fired': the resident it became
    sealed_receipt  BLOB,                       -- 'fired': its uploader token, sealed to `receipt_key`
    fired_at        INTEGER
) STRICT;
CREATE INDEX switches_deadline ON switches (state, last_seen_at + silence_seconds + credit_seconds);

-- The newest backup of each switch, as received (a sealed box to the node's key), and its place in the holder's
-- sequence: a push must carry a higher number, so a replayed or delayed older push never replaces a newer one.
CREATE TABLE switch_backups (
    switch_id   TEXT PRIMARY KEY REFERENCES switches (id) ON DELETE CASCADE,
    sequence    INTEGER NOT NULL CHECK (sequence >= 1),
    digest      BLOB NOT NULL CHECK (length(digest) = 32),  -- SHA-256 of `sealed`
    sealed      BLOB NOT NULL,
    received_at INTEGER NOT NULL
) STRICT;

-- Registrations per sender for the daily limit: a keyed hash of the address and a time, nothing else (rows a day
-- old are dropped), so a cancelled switch still counts the day it was made.
CREATE TABLE switch_registrations (
    address_ref   BLOB NOT NULL,
    registered_at INTEGER NOT NULL
) STRICT;
CREATE INDEX switch_registrations_by_address ON switch_registrations (address_ref, registered_at);

-- When the switch watch last looked (one row): a longer gap than the watch allows is the node's own downtime,
-- credited to every armed switch.
CREATE TABLE switch_watch (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    last_tick_at INTEGER NOT NULL
) STRICT;
