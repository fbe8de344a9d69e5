-- Sends every account row whose ts another row of the source repeats to ingest_triage.sql
-- (see ingest_repeats_candles.sql).
UPDATE ingest_checked
SET verdict = NULL
FROM (
    SELECT ts FROM ingest_checked GROUP BY ts HAVING count(*) > 1
) AS repeated
WHERE ingest_checked.ts = repeated.ts;
