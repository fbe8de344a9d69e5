-- Types the staged policy rows (ingest_raw, all VARCHAR) into the contract's types, and
-- looks up the stored flag set at the same time (see ingest_typed_candles.sql).
-- Parameter: $ts_format (strptime format of ts, or NULL for ISO 8601).
CREATE OR REPLACE TEMP TABLE ingest_typed AS
WITH typed AS (
    SELECT
        source_row,
        {
            'ts': ingest_timestamp(ts, $ts_format),
            'enable_rl': ingest_boolean(enable_rl)
        } AS row
    FROM ingest_raw
)
SELECT
    typed.source_row,
    unnest(typed.row),
    to_json({'ts': typed.row.ts}) AS row_key,
    to_json(typed.row) AS row_content,
    CASE WHEN stored.ts IS NOT NULL THEN to_json(stored) END AS stored_content
FROM typed
LEFT JOIN policy AS stored ON stored.ts = typed.row.ts;
