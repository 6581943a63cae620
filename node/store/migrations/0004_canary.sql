-- Schema 4: the operator's canary statements, each signed by the node key (domain "ftm-canary-v1").
-- Every statement ever set is kept: the newest is the current canary, and the history shows when it changed.
CREATE TABLE canaries (
    id        INTEGER PRIMARY KEY,
    signed_at INTEGER NOT NULL,
    statement TEXT NOT NULL,
    signature BLOB NOT NULL
) STRICT;
CREATE TRIGGER canaries_no_update BEFORE UPDATE ON canaries
BEGIN SELECT RAISE(ABORT, 'canary statements are append-only'); END;
CREATE TRIGGER canaries_no_delete BEFORE DELETE ON canaries
BEGIN SELECT RAISE(ABORT, 'canary statements are append-only'); END;
