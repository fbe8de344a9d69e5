-- Types the staged candles rows (ingest_raw: source_row and the contract's columns, all
-- VARCHAR) into the contract's types, and looks up the stored row with the same key.
-- A value that does not parse becomes NULL here; ingest_unparsed.sql reports it.
-- row_key / row_content / stored_content are JSON texts that ingest_triage.sql compares to
-- tell a duplicate (same content) from a conflict (same key, other content).
-- Parameter: $ts_format (strptime format of ts, or NULL for ISO 8601).
CREATE OR REPLACE TEMP TABLE ingest_typed AS
WITH typed AS (
    SELECT
        source_row,
        {
            'symbol': ingest_symbol(symbol),
            'ts': ingest_timestamp(ts, $ts_format),
            'open': ingest_double(open),
            'high': ingest_double(high),
            'low': ingest_double(low),
            'close': ingest_double(close),
            'volume': ingest_double(volume)
        } AS row
    FROM ingest_raw
)
SELECT
    typed.source_row,
    unnest(typed.row),
    to_json({'symbol': typed.row.symbol, 'ts': typed.row.ts}) AS row_key,
    to_json(typed.row) AS row_content,
    CASE WHEN stored.symbol IS NOT NULL THEN to_json(stored) END AS stored_content
FROM typed
LEFT JOIN candles AS stored
    ON stored.symbol = typed.row.symbol AND stored.ts = typed.row.ts;
