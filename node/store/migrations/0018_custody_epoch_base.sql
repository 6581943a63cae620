-- Schema 18: the base of a custody epoch (SQL in ftm.node.store.custody; protocol in docs/custody.md, "Deposits on
-- a base"). When an epoch's vault file begins with the same bytes as the resident's previous epoch's file, its
-- record names that epoch, its Merkle root and how many bytes they share; a keeper that holds the previous epoch is
-- sent the deposit with that base and copies those bytes from its own replica. All three are NULL for an epoch
-- without a base (and for every epoch recorded before this migration).
ALTER TABLE custody_epochs ADD COLUMN base_epoch INTEGER;
ALTER TABLE custody_epochs ADD COLUMN base_root BLOB CHECK (base_root IS NULL OR length(base_root) = 32);
ALTER TABLE custody_epochs ADD COLUMN base_prefix INTEGER CHECK (base_prefix IS NULL OR base_prefix >= 0);
