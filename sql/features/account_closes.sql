-- Every closed trade in close order: the account's history, from which rlv2.account
-- computes the equity curve and trailing features (SPEC A2, C). A decision at time t sees
-- the closes before t, and those at t of trades entered before t (no look-ahead): a trade
-- entered and closed at the same instant (zero_duration) is not known at that instant,
-- not even to its own decision. Zero-duration closes therefore come last among the closes
-- at one instant, so that what a decision sees is always a prefix of this order.
SELECT
    positions.trade_id,
    positions.closed_ts,
    positions.pnl_pct,
    positions.closed_ts = trades.ts AS zero_duration
FROM positions
JOIN trades USING (trade_id)
ORDER BY positions.closed_ts, zero_duration, positions.trade_id;
