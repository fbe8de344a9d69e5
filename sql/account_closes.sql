-- Every closed trade in close order (closed_ts, then trade_id): the account's history,
-- from which rlv2.account computes the equity curve and trailing features (SPEC A2, C).
-- A decision at time t sees the closes with closed_ts <= t (no look-ahead).
SELECT trade_id, closed_ts, pnl_pct FROM positions ORDER BY closed_ts, trade_id;
