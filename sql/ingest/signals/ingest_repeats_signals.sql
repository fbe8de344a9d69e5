-- Sends every signals row whose signal_id another row of the source repeats to
-- ingest_triage.sql (see ingest_repeats_candles.sql).
UPDATE ingest_checked
SET verdict = NULL
FROM (
    SELECT signal_id FROM ingest_checked GROUP BY signal_id HAVING count(*) > 1
) AS repeated
WHERE ingest_checked.signal_id = repeated.signal_id;
