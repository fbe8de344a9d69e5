-- Positions open at $at: entered before it and closed after it (or not closed yet), with
-- what they put at risk and, when known, their close and outcome. A close at $at of a
-- trade entered before it is already known then (sql/account_closes.sql), so such a
-- position is not open. The simulated holdout starts from them (rlv2.history.account_start).
-- Ties in the order of the trade_id's text.
SELECT
    trades.ts AS entry_ts,
    positions.closed_ts,
    positions.pnl_pct,
    trades.size_multiplier,
    trades.leverage,
    enum_code(trades.weight_action) AS weight_action
FROM trades
LEFT JOIN positions USING (trade_id)
WHERE trades.ts < $at AND (positions.closed_ts IS NULL OR positions.closed_ts > $at)
ORDER BY positions.closed_ts NULLS LAST, trades.trade_id::VARCHAR;
