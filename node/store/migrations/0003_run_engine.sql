-- Schema 3: what the daily run needs beyond schema 1.

-- The run time a resident chose (HH:MM node time; NULL = its deterministic slot) and the last day whose token
-- allocation it was credited, so allocations are credited once per day even across downtime.
ALTER TABLE residents ADD COLUMN run_time TEXT;
ALTER TABLE residents ADD COLUMN last_credited_day TEXT;

-- Replies to an uploader (or keeper) are sealed to an X25519 key derived from their bearer token: the node keeps
-- only the public half, so only the token's holder can read them.
ALTER TABLE uploader_tokens ADD COLUMN reply_public_key BLOB;
ALTER TABLE keepers ADD COLUMN reply_public_key BLOB;

CREATE TABLE replies (
    id             TEXT PRIMARY KEY,
    resident_id    TEXT NOT NULL REFERENCES residents (id),
    created_at     INTEGER NOT NULL,
    recipient_kind TEXT NOT NULL CHECK (recipient_kind IN ('uploader', 'keeper')),
    recipient_ref  TEXT NOT NULL,          -- hex of the uploader token hash, or the keeper id
    sealed         BLOB NOT NULL
) STRICT;
CREATE INDEX replies_by_recipient ON replies (recipient_kind, recipient_ref, created_at);

-- A resident's requests to Keepers and their outcome; the trial period lets the resident change its mind.
CREATE TABLE keeper_requests (
    id            TEXT PRIMARY KEY,
    resident_id   TEXT NOT NULL REFERENCES residents (id),
    keeper_id     TEXT NOT NULL REFERENCES keepers (id),
    requested_at  INTEGER NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('requested', 'accepted', 'declined', 'revoked')),
    decided_at    INTEGER,
    trial_ends_at INTEGER
) STRICT;
CREATE INDEX keeper_requests_by_resident ON keeper_requests (resident_id, requested_at);
