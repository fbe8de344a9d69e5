-- Every closed trade in close order: the account's history, from which rlv2.account
-- computes the equity curve and trailing features (SPEC A2, C). A decision at time t sees
-- the closes before t, and those at t of trades entered before t (no look-ahead): a trade
-- entered and closed at the same instant (zero_duration) is not known at that instant,
-- not even to its own decision. Zero-duration closes therefore come last among the closes
-- at one instant, so that what a decision sees is always a prefix of this order. Closes
-- at one instant are otherwise in the order of their trade_id's text.
-- trade_id comes back as the trade's code, the position of its id in the text order of
-- all trade_ids from 0, computed as features_decisions.sql computes it, so that the
-- replay matches closes to decisions on int64 arrays (ids are text, schema.sql).
WITH trade_codes AS (
    SELECT trade_id, dense_rank() OVER (ORDER BY trade_id::VARCHAR) - 1 AS trade_code
    FROM trades
)
SELECT
    trade_codes.trade_code AS trade_id,
    positions.closed_ts,
    positions.pnl_pct,
    positions.closed_ts = trades.ts AS zero_duration
FROM positions
JOIN trades USING (trade_id)
JOIN trade_codes USING (trade_id)
ORDER BY positions.closed_ts, zero_duration, trade_codes.trade_code;
