-- Types every staged policy row and gives the plainly fine ones their verdict (see
-- ingest_checked_candles.sql): a time and a flag that parse (ingest_unparsed.sql; policy
-- has no other rule).
-- Parameter: $ts_format (strptime format of ts, or NULL for ISO 8601).
CREATE OR REPLACE TEMP TABLE ingest_checked AS
WITH typed AS (
    SELECT
        source_row,
        ingest_timestamp(ts, $ts_format) AS ts,
        ingest_boolean(enable_rl) AS enable_rl
    FROM ingest_mapped
)
SELECT
    typed.*,
    CASE
        WHEN typed.ts IS NOT NULL AND typed.enable_rl IS NOT NULL
        THEN CASE
            WHEN stored.ts IS NULL THEN 'load'
            WHEN stored.enable_rl = typed.enable_rl THEN 'duplicate'
        END
    END AS verdict
FROM typed
LEFT JOIN policy AS stored ON stored.ts = typed.ts;
