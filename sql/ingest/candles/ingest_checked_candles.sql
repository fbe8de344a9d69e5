-- Types every staged candles row (ingest_mapped, all VARCHAR) into the contract's types in
-- one pass and gives the rows that are plainly fine their verdict: 'load' (no problem, key
-- not stored) or 'duplicate' (no problem, the same row already stored). Every other row
-- gets NULL: a value that does not parse or breaks a rule (ingest_unparsed.sql and
-- ingest_rules_candles.sql name it), or a key stored with other values; those rows, usually
-- few, go through ingest_triage.sql for their verdict and reason. A key given by two rows
-- of the source is found by ingest_repeats_candles.sql, run right after this query.
-- The conditions are those of the two files above, stated for a row that passes.
-- Parameter: $ts_format (strptime format of ts, or NULL for ISO 8601).
CREATE OR REPLACE TEMP TABLE ingest_checked AS
WITH typed AS (
    SELECT
        source_row,
        ingest_symbol(symbol) AS symbol,
        ingest_timestamp(ts, $ts_format) AS ts,
        ingest_double(open) AS open,
        ingest_double(high) AS high,
        ingest_double(low) AS low,
        ingest_double(close) AS close,
        ingest_double(volume) AS volume,
        volume AS volume_text
    FROM ingest_mapped
)
SELECT
    typed.* EXCLUDE (volume_text),
    CASE
        WHEN ingest_is_symbol(typed.symbol)
            AND typed.ts IS NOT NULL
            AND ingest_is_price(typed.open)
            AND ingest_is_price(typed.high)
            AND ingest_is_price(typed.low)
            AND ingest_is_price(typed.close)
            AND ingest_given_or_blank(typed.volume, typed.volume_text)
            AND (typed.volume IS NULL OR ingest_is_nonnegative(typed.volume))
            AND typed.high >= typed.low
            AND typed.high >= greatest(typed.open, typed.close)
            AND typed.low <= least(typed.open, typed.close)
        THEN CASE
            WHEN stored.symbol IS NULL THEN 'load'
            WHEN ingest_same_double(stored.open, typed.open)
                AND ingest_same_double(stored.high, typed.high)
                AND ingest_same_double(stored.low, typed.low)
                AND ingest_same_double(stored.close, typed.close)
                AND ingest_same_double(stored.volume, typed.volume)
                THEN 'duplicate'
        END
    END AS verdict
FROM typed
LEFT JOIN candles AS stored ON stored.symbol = typed.symbol AND stored.ts = typed.ts;
