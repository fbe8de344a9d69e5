-- Types every staged positions row and gives the plainly fine ones their verdict (see
-- ingest_checked_candles.sql): the conditions of ingest_unparsed.sql and
-- ingest_rules_positions.sql, stated for a row that passes.
-- Parameter: $ts_format (strptime format of closed_ts, or NULL for ISO 8601).
CREATE OR REPLACE TEMP TABLE ingest_checked AS
WITH typed AS (
    SELECT
        source_row,
        ingest_text(trade_id) AS trade_id,
        ingest_timestamp(closed_ts, $ts_format) AS closed_ts,
        ingest_double(exit_price) AS exit_price,
        ingest_double(pnl_pct) AS pnl_pct,
        ingest_double(max_drawdown_pct) AS max_drawdown_pct
    FROM ingest_mapped
)
SELECT
    typed.*,
    CASE
        WHEN typed.trade_id IS NOT NULL
            AND typed.closed_ts IS NOT NULL
            AND ingest_is_price(typed.exit_price)
            AND ingest_is_pnl_pct(typed.pnl_pct)
            AND ingest_is_drawdown_pct(typed.max_drawdown_pct)
            AND trade.ts <= typed.closed_ts
        THEN CASE
            WHEN stored.trade_id IS NULL THEN 'load'
            WHEN stored.closed_ts = typed.closed_ts
                AND ingest_same_double(stored.exit_price, typed.exit_price)
                AND ingest_same_double(stored.pnl_pct, typed.pnl_pct)
                AND ingest_same_double(stored.max_drawdown_pct, typed.max_drawdown_pct)
                THEN 'duplicate'
        END
    END AS verdict
FROM typed
LEFT JOIN trades AS trade ON trade.trade_id = typed.trade_id
LEFT JOIN positions AS stored ON stored.trade_id = typed.trade_id;
