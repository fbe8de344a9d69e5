-- Types every staged account row and gives the plainly fine ones their verdict (see
-- ingest_checked_candles.sql): a time that parses and an equity that is finite and > 0
-- (ingest_unparsed.sql, ingest_rules_account.sql).
-- Parameter: $ts_format (strptime format of ts, or NULL for ISO 8601).
CREATE OR REPLACE TEMP TABLE ingest_checked AS
WITH typed AS (
    SELECT
        source_row,
        ingest_timestamp(ts, $ts_format) AS ts,
        ingest_double(equity) AS equity
    FROM ingest_mapped
)
SELECT
    typed.*,
    CASE
        WHEN typed.ts IS NOT NULL AND ingest_is_price(typed.equity)
        THEN CASE
            WHEN stored.ts IS NULL THEN 'load'
            WHEN ingest_same_double(stored.equity, typed.equity) THEN 'duplicate'
        END
    END AS verdict
FROM typed
LEFT JOIN account AS stored ON stored.ts = typed.ts;
