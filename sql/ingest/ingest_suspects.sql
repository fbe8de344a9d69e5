-- Stages the rows that ingest_checked_*.sql gave no verdict (usually few) for
-- ingest_triage.sql: their source_row and contract columns, all VARCHAR, as the
-- ingest_typed_*, ingest_unparsed and ingest_rules_* queries read them.
CREATE OR REPLACE TEMP TABLE ingest_raw AS
SELECT *
FROM ingest_mapped
WHERE source_row IN (SELECT source_row FROM ingest_checked WHERE verdict IS NULL)
ORDER BY source_row;
