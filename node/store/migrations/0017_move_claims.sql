-- Schema 17: moves under threshold custody, release rule R2 (SQL in ftm.node.store.moves and
-- ftm.node.store.moveclaims; protocol in docs/federation-moves.md §8).
--
-- At the source, a move out of a resident kept in threshold custody carries a claim both nodes signed, which every
-- keeper of the resident records before it releases anything to the destination, after a delay in which the host
-- or a guardian may veto it. `claim` is the encoded `MoveClaim` (host's and destination's signatures); `ready_at`
-- the time from which enough keepers of the epoch to send will release under it.
ALTER TABLE moves_out ADD COLUMN claim BLOB;
ALTER TABLE moves_out ADD COLUMN ready_at INTEGER;

-- At the destination: the id of the only claim it signed for this move (never another: a claim id is used by one
-- move only), and the X25519 secret its keeper release requests name, made once and kept until the move ends so
-- that a share released before a crash still opens after it.
ALTER TABLE moves_in ADD COLUMN claim_id BLOB CHECK (claim_id IS NULL OR length(claim_id) = 32);
ALTER TABLE moves_in ADD COLUMN release_secret BLOB CHECK (release_secret IS NULL OR length(release_secret) = 32);
CREATE UNIQUE INDEX moves_in_claim ON moves_in (claim_id) WHERE claim_id IS NOT NULL;

-- Shares keepers released to the destination under a move's claim, kept as they came (sealed to the move's
-- release key) until the attempt is staged or the move ends: keepers release an epoch once per claim, so a share
-- lost to a crash would be lost for good.
CREATE TABLE move_releases (
    move_id      BLOB NOT NULL REFERENCES moves_in (id),
    epoch        INTEGER NOT NULL,
    x            INTEGER NOT NULL CHECK (x BETWEEN 1 AND 255),
    keeper_key   BLOB NOT NULL CHECK (length(keeper_key) = 32),
    sealed_share BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (move_id, epoch, x)
) STRICT;
