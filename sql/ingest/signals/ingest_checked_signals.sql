-- Types every staged signals row and gives the plainly fine ones their verdict (see
-- ingest_checked_candles.sql): the conditions of ingest_unparsed.sql and
-- ingest_rules_signals.sql, stated for a row that passes. A row that shares its
-- (symbol, ts, model) with another row of the source goes to ingest_triage.sql, as that
-- rule compares rows whatever else is wrong with them.
-- Parameter: $ts_format (strptime format of ts, or NULL for ISO 8601).
CREATE OR REPLACE TEMP TABLE ingest_checked AS
WITH
typed AS (
    SELECT
        source_row,
        ingest_text(signal_id) AS signal_id,
        ingest_timestamp(ts, $ts_format) AS ts,
        ingest_symbol(symbol) AS symbol,
        TRY_CAST(ingest_label(model) AS model_enum) AS model,
        ingest_integer(direction) AS direction,
        ingest_double(confidence) AS confidence,
        TRY_CAST(ingest_label(predicted_regime) AS regime_enum) AS predicted_regime
    FROM ingest_mapped
),
counted AS (
    SELECT *, count(*) OVER (PARTITION BY symbol, ts, model) AS rows_at_point
    FROM typed
)
SELECT
    typed.* EXCLUDE (rows_at_point),
    CASE
        WHEN typed.signal_id IS NOT NULL
            AND typed.ts IS NOT NULL
            AND ingest_is_symbol(typed.symbol)
            AND typed.model IS NOT NULL
            AND ingest_is_sign(typed.direction)
            AND ingest_is_unit_interval(typed.confidence)
            AND typed.predicted_regime IS NOT NULL
            AND (taken.signal_id IS NULL OR taken.signal_id = typed.signal_id)
            AND typed.rows_at_point = 1
        THEN CASE
            WHEN stored.signal_id IS NULL THEN 'load'
            WHEN stored.ts = typed.ts
                AND stored.symbol = typed.symbol
                AND stored.model = typed.model
                AND stored.direction = typed.direction
                AND ingest_same_double(stored.confidence, typed.confidence)
                AND stored.predicted_regime = typed.predicted_regime
                THEN 'duplicate'
        END
    END AS verdict
FROM counted AS typed
LEFT JOIN signals AS taken
    ON taken.symbol = typed.symbol AND taken.ts = typed.ts AND taken.model = typed.model
LEFT JOIN signals AS stored ON stored.signal_id = typed.signal_id;
