-- Types the staged signals rows (ingest_raw, all VARCHAR) into the contract's types, and
-- looks up the stored signal with the same signal_id (see ingest_typed_candles.sql).
-- Parameter: $ts_format (strptime format of ts, or NULL for ISO 8601).
CREATE OR REPLACE TEMP TABLE ingest_typed AS
WITH typed AS (
    SELECT
        source_row,
        {
            'signal_id': ingest_text(signal_id),
            'ts': ingest_timestamp(ts, $ts_format),
            'symbol': ingest_symbol(symbol),
            'model': TRY_CAST(ingest_label(model) AS model_enum),
            'direction': ingest_integer(direction),
            'confidence': ingest_double(confidence),
            'predicted_regime': TRY_CAST(ingest_label(predicted_regime) AS regime_enum)
        } AS row
    FROM ingest_raw
)
SELECT
    typed.source_row,
    unnest(typed.row),
    to_json({'signal_id': typed.row.signal_id}) AS row_key,
    to_json(typed.row) AS row_content,
    CASE WHEN stored.signal_id IS NOT NULL THEN to_json(stored) END AS stored_content
FROM typed
LEFT JOIN signals AS stored ON stored.signal_id = typed.row.signal_id;
