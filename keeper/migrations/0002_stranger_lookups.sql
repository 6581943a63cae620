-- Schema 2: indexes for telling a stranger from a known key (`KeeperStore.knows`, docs/keeper.md "Strangers").
--
-- Every release-policy request from a key that is not a host asks whether the key was ever a claim's counterpart,
-- a requester something was released to, or a guardian of a live deposit. `releases` and `deposits` grow by a row
-- per resident and epoch for as long as the keeper serves, so without these the question scans them whole, before
-- the stranger's rate limit can answer: the cheapest request a stranger can make would cost the most.
CREATE INDEX releases_by_requester ON releases (requester_key);
CREATE INDEX claims_by_counterpart ON claims (counterpart_key);
-- Guardians are stored concatenated per deposit, so they cannot be indexed by key; the live deposits (at most a
-- few per resident) are the only ones whose guardians count, and this index lets the lookup read only those.
CREATE INDEX deposits_live ON deposits (host_key) WHERE state IN ('deposited', 'held', 'committed');
