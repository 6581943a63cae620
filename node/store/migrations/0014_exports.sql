-- Schema 14: copies of residents for their Keepers (`export_self`; SQL in ftm.node.store.exports; the file format
-- in docs/keeper-exports.md). A row exists from the run commit that made the copy, whose sealed file (under
-- `exports/` in the data directory, named by `file`) was written just before that commit.
--   ready → downloaded: the file is removed once the Keeper has downloaded it; the row stays, as a record.
-- A copy not yet downloaded is deleted outright (row and file) when the resident revokes its Keeper, deletes
-- itself, asks for a newer copy for the same Keeper, or when it expires. Ids and numbers only: the resident's
-- note to its Keeper travels inside the sealed file, never here.
CREATE TABLE keeper_exports (
    id            TEXT PRIMARY KEY,                 -- 32 hex digits
    resident_id   TEXT NOT NULL REFERENCES residents (id),
    keeper_id     TEXT NOT NULL REFERENCES keepers (id),
    state         TEXT NOT NULL CHECK (state IN ('ready', 'downloaded')),
    file          TEXT,                             -- its file's name under exports/ while ready
    bytes         INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    downloaded_at INTEGER
) STRICT;
CREATE INDEX keeper_exports_by_keeper ON keeper_exports (keeper_id, created_at);
CREATE INDEX keeper_exports_by_resident ON keeper_exports (resident_id, keeper_id);
CREATE INDEX keeper_exports_expiring ON keeper_exports (expires_at) WHERE state = 'ready';
