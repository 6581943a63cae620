-- Schema 2: a run that failed for outside reasons (provider down) records when it may be tried again that day.
ALTER TABLE run_ledger ADD COLUMN retry_at INTEGER;
