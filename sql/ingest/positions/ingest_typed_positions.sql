-- Types the staged positions rows (ingest_raw, all VARCHAR) into the contract's types, and
-- looks up the stored close of the same trade (see ingest_typed_candles.sql).
-- Parameter: $ts_format (strptime format of closed_ts, or NULL for ISO 8601).
CREATE OR REPLACE TEMP TABLE ingest_typed AS
WITH typed AS (
    SELECT
        source_row,
        {
            'trade_id': ingest_text(trade_id),
            'closed_ts': ingest_timestamp(closed_ts, $ts_format),
            'exit_price': ingest_double(exit_price),
            'pnl_pct': ingest_double(pnl_pct),
            'max_drawdown_pct': ingest_double(max_drawdown_pct)
        } AS row
    FROM ingest_raw
)
SELECT
    typed.source_row,
    unnest(typed.row),
    to_json({'trade_id': typed.row.trade_id}) AS row_key,
    to_json(typed.row) AS row_content,
    CASE WHEN stored.trade_id IS NOT NULL THEN to_json(stored) END AS stored_content
FROM typed
LEFT JOIN positions AS stored ON stored.trade_id = typed.row.trade_id;
