-- Schema 16: indexes for the public custody report (ftm.node.store.custodyreport; docs/transparency.md).
--
-- The report counts each keeper's challenges of the last week: passed, contained (failed, to be retried) and
-- counted failures. Summing outcomes over the index of proofs by keeper and time fetched every row of the week
-- from the table: 350,000 rows at 10,000 residents and 5 keepers, a third of a second. Now it counts the week's
-- entries of that index, which holds nothing else to read, and takes the failures from this one, which holds
-- failures only (one challenge in hundreds): passed = all − failures. Its WHERE matches the report's terms word
-- for word, as SQLite requires of a partial index; with `outcome` in it, the index alone answers.
CREATE INDEX custody_proofs_failures ON custody_proofs (keeper_key, at, outcome, counted) WHERE outcome != 'ok';

-- The report also totals what each keeper holds. With the epoch's resident and number in the index of deliveries
-- by keeper and state, the totals find each epoch without reading the delivery's row (each carries a sealed share,
-- a Holding and a receipt). It replaces the index of migration 13, which it begins with.
DROP INDEX custody_deliveries_by_keeper;
CREATE INDEX custody_deliveries_by_keeper ON custody_deliveries (keeper_key, state, resident_id, epoch);

-- And the newest of what a keeper holds, without sorting all of it: the deliveries it holds, in rowid order (the
-- order their epochs were made). Its WHERE matches the report's terms word for word.
CREATE INDEX custody_deliveries_held ON custody_deliveries (keeper_key)
    WHERE state IN ('deposited', 'held', 'committed');
