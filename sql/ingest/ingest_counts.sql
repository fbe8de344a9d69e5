-- Counts the staged rows by verdict (ingest_checked, after ingest_verdicts.sql), the
-- malformed CSV records (ingest_rejected, one row each) counting as read and quarantined.
-- rows_with_two_verdicts (in ingest_triage.sql) and rows_without_verdict must be 0: every
-- row read is loaded, a duplicate, or quarantined, exactly one of these.
WITH
rejected AS (SELECT count(*) AS records FROM ingest_rejected),
verdicts AS (
    SELECT
        count(*) AS rows_read,
        count(*) FILTER (WHERE verdict = 'load') AS rows_to_load,
        count(*) FILTER (WHERE verdict = 'duplicate') AS rows_duplicate,
        count(*) FILTER (WHERE verdict = 'quarantine') AS rows_quarantined,
        count(*) FILTER (WHERE verdict IS NULL) AS rows_without_verdict
    FROM ingest_checked
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
    verdicts.rows_read + rejected.records AS rows_read,
    verdicts.rows_to_load,
    verdicts.rows_duplicate,
    verdicts.rows_quarantined + rejected.records AS rows_quarantined,
    split.rows_with_two_verdicts,
    verdicts.rows_without_verdict
FROM rejected, verdicts, split;
