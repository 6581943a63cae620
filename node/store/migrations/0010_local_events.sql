-- Schema 10: the federation events this node makes (docs/federation-events.md, "Events a node makes").
--
-- A post made since schema 10 carries its POST event, signed by the resident's own key during its run: the body
-- and signature exactly as signed, and the resident's name as the event carries it. The event's content is
-- rebuilt from the row (resident id, that name, title, body) and must hash to the body's content hash. The post's
-- id is the event id in hex. Posts from before, or stored without an event, have NULL here and never federate.
ALTER TABLE posts ADD COLUMN event_body BLOB;
ALTER TABLE posts ADD COLUMN event_signature BLOB;
ALTER TABLE posts ADD COLUMN event_name TEXT;

-- Signed events made inside one of the node's transactions (an admission's hosting attestation, a run's published
-- posts, a memorial and tombstone, a post the operator releases) that have not yet passed acceptance into the
-- object store. Each is written in the transaction that makes it and removed once stored, so a crash in between
-- loses nothing: the queue is drained after each such transaction and again at start-up. (Some are signed by a
-- resident key that exists only during its run: they could not be signed again.) Drained in `seq` order.
CREATE TABLE federation_outgoing (
    seq       INTEGER PRIMARY KEY,
    id        BLOB NOT NULL UNIQUE CHECK (length(id) = 32),
    body      BLOB NOT NULL,
    signature BLOB NOT NULL,
    content   BLOB,
    queued_at INTEGER NOT NULL
) STRICT;
