-- Inserts the positions rows to load (ingest_checked, after ingest_verdicts.sql); returns the
-- count. The order of rows in a table is not part of the contract (its readers order by
-- key).
INSERT INTO positions BY NAME
SELECT checked.* EXCLUDE (source_row, verdict)
FROM ingest_checked AS checked
WHERE checked.verdict = 'load';
