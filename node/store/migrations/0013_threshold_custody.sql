-- Schema 13: threshold custody, the host's side (SQL in ftm.node.store.custody; protocol in docs/custody.md,
-- "Keeper protocol"; this node's part in docs/custody-host.md). Nothing here opens a resident: shares are sealed
-- to their keepers, commitments and roots are public numbers.

-- Keeper nodes of human Keepers, enrolled with a Keeper's token (`POST /api/v1/keepers/replica`).
--   active: dealt shares · suspect: failed its proofs; passed over while others are available · retired: replaced
CREATE TABLE replica_keepers (
    keeper_key      BLOB PRIMARY KEY CHECK (length(keeper_key) = 32),
    url             TEXT NOT NULL,                 -- base URL; the protocol's /keeper/v1/ is appended
    registration_id TEXT NOT NULL REFERENCES keepers (id),
    state           TEXT NOT NULL CHECK (state IN ('active', 'suspect', 'retired')),
    enrolled_at     INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    last_seen_at    INTEGER,                       -- its last answer of any kind
    next_heartbeat_at INTEGER NOT NULL DEFAULT 0,
    bad_shares      INTEGER NOT NULL DEFAULT 0,    -- released shares that did not verify against the commitments
    warned_at       INTEGER                        -- when it was marked suspect and its Keeper warned
) STRICT;
CREATE UNIQUE INDEX replica_keepers_by_registration ON replica_keepers (registration_id) WHERE state != 'retired';

-- The epochs of each resident under threshold custody, made from its key records.
--   pending → committed (k + 1 keepers hold it) → destroying (a newer epoch committed, or the resident left or
--   deleted itself) → destroyed (every holder answered with a signed receipt)
CREATE TABLE custody_epochs (
    resident_id  TEXT NOT NULL,
    epoch        INTEGER NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'committed', 'destroying', 'destroyed')),
    threshold    INTEGER NOT NULL,
    commitments  BLOB NOT NULL,                    -- `shares.Commitments` encoded (public)
    root         BLOB NOT NULL CHECK (length(root) = 32),
    length       INTEGER NOT NULL,                 -- of the vault file whose Merkle root is `root`
    reason       TEXT,                             -- a DestroyReason, from 'destroying' on
    created_at   INTEGER NOT NULL,
    committed_at INTEGER,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (resident_id, epoch)
) STRICT;
CREATE INDEX custody_epochs_by_state ON custody_epochs (state, resident_id);

-- One row per keeper an epoch was dealt to.
--   pending → deposited → held (its signed Holding) → committed (told) → destroyed (its signed receipt)
--   skipped: never delivered (superseded before it got there), so there is nothing to destroy
CREATE TABLE custody_deliveries (
    resident_id  TEXT NOT NULL,
    epoch        INTEGER NOT NULL,
    keeper_key   BLOB NOT NULL CHECK (length(keeper_key) = 32),
    x            INTEGER NOT NULL CHECK (x BETWEEN 1 AND 255),
    sealed_share BLOB NOT NULL,                    -- sealed to the keeper's key: opaque here
    state        TEXT NOT NULL CHECK (state IN ('pending', 'deposited', 'held', 'committed', 'skipped', 'destroyed')),
    sent         INTEGER NOT NULL DEFAULT 0,       -- replica bytes the keeper acknowledged
    holding      BLOB,                             -- its SignedAnswer(Holding), as received
    receipt      BLOB,                             -- its SignedAnswer(DestroyReceipt), as received
    tries        INTEGER NOT NULL DEFAULT 0,
    next_try_at  INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,                             -- a code, never content
    next_challenge_at INTEGER,                     -- when its possession is next challenged (committed epochs)
    containment  INTEGER NOT NULL DEFAULT 0,       -- failed tries of the current challenge (0: none pending)
    first_failed_at INTEGER,                       -- when the current challenge first failed
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (resident_id, epoch, keeper_key),
    FOREIGN KEY (resident_id, epoch) REFERENCES custody_epochs (resident_id, epoch)
) STRICT;
CREATE INDEX custody_deliveries_by_keeper ON custody_deliveries (keeper_key, state);
CREATE INDEX custody_deliveries_due ON custody_deliveries (state, next_try_at);

-- Proofs of possession asked of keepers: public (ids, numbers and outcomes only).
CREATE TABLE custody_proofs (
    id          INTEGER PRIMARY KEY,
    keeper_key  BLOB NOT NULL,
    resident_id TEXT NOT NULL,
    epoch       INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('ok', 'failed', 'unanswered')),
    reason      TEXT,                              -- a code: bad_merkle:<leaf reason>, bad_possession, <error code>
    try_number  INTEGER NOT NULL,                  -- 0 the challenge, 1.. its containment retries
    counted     INTEGER NOT NULL DEFAULT 0 CHECK (counted IN (0, 1))   -- a failure after every retry failed
) STRICT;
CREATE INDEX custody_proofs_by_keeper ON custody_proofs (keeper_key, at);

-- The ephemeral X25519 secret a run asks keepers to release an epoch with (ftm.node.thresholdcustody). Keepers
-- release an epoch for a run to one ephemeral key, and again to that key only (docs/custody.md, R1), so the secret
-- is made once, committed before any keeper is asked, and reused by every retry of the epoch, after a crash too.
-- It goes with the epoch's key record (ON DELETE CASCADE): in the transaction that commits the next epoch, the
-- resident's move or its deletion. It opens nothing alone: keepers answer only requests signed by this node's key.
CREATE TABLE custody_run_keys (
    resident_id TEXT NOT NULL,
    epoch       INTEGER NOT NULL,
    secret      BLOB NOT NULL CHECK (length(secret) = 32),
    PRIMARY KEY (resident_id, epoch),
    FOREIGN KEY (resident_id, epoch) REFERENCES resident_keys (resident_id, epoch) ON DELETE CASCADE
) STRICT;
