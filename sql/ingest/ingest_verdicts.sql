-- Copies the verdicts of ingest_triage.sql onto the rows of ingest_checked that had none,
-- so that ingest_checked holds every row's verdict: 'load', 'duplicate' or 'quarantine'.
-- Its typed values are those ingest_typed_*.sql gives (the same parsers), so a triaged
-- row to load is inserted from ingest_checked like the others (one INSERT of one table is
-- much faster than a UNION ALL of two). A row with two verdicts is a bug that
-- ingest_counts.sql reports.
UPDATE ingest_checked
SET verdict = triaged.verdict
FROM (SELECT DISTINCT source_row, verdict FROM ingest_triage) AS triaged
WHERE ingest_checked.source_row = triaged.source_row;
