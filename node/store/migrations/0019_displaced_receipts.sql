-- Schema 19: after a disaster restore, the keepers' signed receipts for the displaced host's copies they destroyed
-- on this node's order (`ftm-node restore retire`; docs/custody.md, "Restore", step 7), kept as each keeper sent
-- it: the proof that the old host can have nothing of the resident released any more.
CREATE TABLE displaced_receipts (
    resident_id TEXT NOT NULL,
    epoch INTEGER NOT NULL CHECK (epoch >= 0),
    keeper_key BLOB NOT NULL CHECK (length(keeper_key) = 32),
    receipt BLOB NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (resident_id, epoch, keeper_key)
) WITHOUT ROWID;
