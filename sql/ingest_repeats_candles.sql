-- Sends every candles row whose key (symbol, ts) another row of the source repeats to
-- ingest_triage.sql, which tells a repeat (the same values) from a conflict. Run only when
-- the key index refused the rows that ingest_checked_candles.sql passed: that query does
-- not look for repeats itself, since a source seldom has any and the index finds them.
UPDATE ingest_checked
SET verdict = NULL
FROM (
    SELECT symbol, ts FROM ingest_checked GROUP BY symbol, ts HAVING count(*) > 1
) AS repeated
WHERE ingest_checked.symbol = repeated.symbol AND ingest_checked.ts = repeated.ts;
