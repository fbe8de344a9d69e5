-- Counts the staged rows by verdict (ingest_triage.sql), the malformed CSV records
-- (ingest_rejected, one row each) counting as read and quarantined. rows_with_two_verdicts
-- must be 0: every row read is loaded, a duplicate, or quarantined, never two of these.
WITH
rejected AS (SELECT count(*) AS records FROM ingest_rejected),
verdicts AS (
    SELECT
        count(DISTINCT source_row) FILTER (WHERE verdict = 'load') AS rows_to_load,
        count(DISTINCT source_row) FILTER (WHERE verdict = 'duplicate') AS rows_duplicate,
        count(DISTINCT source_row) FILTER (WHERE verdict = 'quarantine') AS rows_quarantined
    FROM ingest_triage
),
split AS (
    SELECT count(*) AS rows_with_two_verdicts
    FROM (
        SELECT source_row
        FROM ingest_triage
        GROUP BY source_row
        HAVING count(DISTINCT verdict) > 1
    )
)
SELECT
    (SELECT count(*) FROM ingest_typed) + rejected.records AS rows_read,
    verdicts.rows_to_load,
    verdicts.rows_duplicate,
    verdicts.rows_quarantined + rejected.records AS rows_quarantined,
    split.rows_with_two_verdicts
FROM rejected, verdicts, split;
