-- Types the staged account rows (ingest_raw, all VARCHAR) into the contract's types, and
-- looks up the stored equity recorded at the same time (see ingest_typed_candles.sql).
-- Parameter: $ts_format (strptime format of ts, or NULL for ISO 8601).
CREATE OR REPLACE TEMP TABLE ingest_typed AS
WITH typed AS (
    SELECT
        source_row,
        {
            'ts': ingest_timestamp(ts, $ts_format),
            'equity': ingest_double(equity)
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
LEFT JOIN account AS stored ON stored.ts = typed.row.ts;
