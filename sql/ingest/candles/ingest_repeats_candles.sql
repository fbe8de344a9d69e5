-- Sends every candles row whose key (symbol, ts) another row of the source repeats to
-- ingest_triage.sql, which tells a repeat (the same values) from a conflict. Run after
-- ingest_checked_candles.sql on every staged load, since candles has no key index to refuse
-- a repeat (on a database made before the index was dropped: only when the index refused).
UPDATE ingest_checked
SET verdict = NULL
FROM (
    SELECT symbol, ts FROM ingest_checked GROUP BY symbol, ts HAVING count(*) > 1
) AS repeated
WHERE ingest_checked.symbol = repeated.symbol AND ingest_checked.ts = repeated.ts;
