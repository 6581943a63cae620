-- Schema 9: the federation peer table (SQL in ftm.federation.peers; protocol in docs/federation-gossip.md).
-- One row per base URL we may talk to. `node_key` is NULL for a bootstrap URL not yet contacted; once a hello
-- answer from that URL is checked (`verified` = 1) the key is pinned: a later hello with another key is refused.
-- Unverified rows with a key are candidates: a key someone claimed for a URL (peer exchange, mDNS, a node that
-- introduced itself), trusted only after its own hello proves it. `source` says how we first learnt the row.
-- Times are Unix seconds; `failures` counts failed verifications of a candidate in a row (it is dropped after a
-- few). The table is bounded by the code (PeerLimits), oldest candidates evicted first.
CREATE TABLE federation_peers (
    url          TEXT PRIMARY KEY,
    node_key     BLOB UNIQUE CHECK (node_key IS NULL OR length(node_key) = 32),
    verified     INTEGER NOT NULL DEFAULT 0 CHECK (verified IN (0, 1) AND (verified = 0 OR node_key IS NOT NULL)),
    source       TEXT NOT NULL CHECK (source IN ('bootstrap', 'exchange', 'mdns', 'inbound')),
    first_seen   INTEGER NOT NULL,
    last_seen    INTEGER NOT NULL,
    last_success INTEGER,
    last_failure INTEGER,
    failures     INTEGER NOT NULL DEFAULT 0
) STRICT;
