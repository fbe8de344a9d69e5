-- Sends every positions row whose trade_id another row of the source repeats to
-- ingest_triage.sql (see ingest_repeats_candles.sql).
UPDATE ingest_checked
SET verdict = NULL
FROM (
    SELECT trade_id FROM ingest_checked GROUP BY trade_id HAVING count(*) > 1
) AS repeated
WHERE ingest_checked.trade_id = repeated.trade_id;
