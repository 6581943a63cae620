-- Schema 5: Keeper registration. A keyed hash of the registering client's address (never the address) counts
-- registrations per sender; the token hash is how a Keeper's bearer token finds its row.
ALTER TABLE keepers ADD COLUMN address_ref TEXT;
CREATE INDEX keepers_by_address ON keepers (address_ref, created_at);
CREATE UNIQUE INDEX keepers_by_token ON keepers (token_hash);
CREATE INDEX keeper_requests_by_keeper ON keeper_requests (keeper_id, requested_at);
