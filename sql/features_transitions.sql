-- One row per decision point with everything the replay needs (SPEC A5 as arrays):
-- the market state at decision time and at close, the actual regime of the holding
-- period, the account state as of the decision (trades closed at or before it) and
-- after the trade's own close, and the RL switch at the signal and at the close.
-- Requires the temp tables decisions, window_features, account (features_*.sql).
-- Parameters: $lookback, $window (trailing trades), $initial_equity.
WITH close_policy AS (
    -- the switch at each close (closed trades only: an ASOF join must not see NULL times)
    SELECT d.decision_id, p.enable_rl
    FROM (SELECT decision_id, closed_ts FROM decisions WHERE closed_ts IS NOT NULL) AS d
    ASOF JOIN policy AS p ON d.closed_ts >= p.ts
),
acct AS (
    SELECT closed_ts, k, equity, winrate, account_health, equity_curve_slope, sharpe_signal
    FROM account
)
SELECT
    d.*,
    ws.volatility,
    ws.market_pressure,
    ws.regime,
    wc.volatility AS close_volatility,
    wc.market_pressure AS close_market_pressure,
    wc.regime AS close_regime,
    wh.regime AS actual_regime,
    coalesce(ad.winrate, 0.5) AS previous_winrate,
    coalesce(ad.account_health, 1.0) AS account_health,
    coalesce(ad.equity_curve_slope, 0.0) AS equity_curve_slope,
    coalesce(ad.k, 0) AS closed_before,
    coalesce(ad.equity, $initial_equity) AS equity,
    ac.winrate AS close_winrate,
    ac.account_health AS close_account_health,
    ac.equity_curve_slope AS close_equity_curve_slope,
    ac.sharpe_signal AS close_sharpe_signal,
    coalesce(ps.enable_rl, TRUE) AS rl_at_signal,
    coalesce(pc.enable_rl, TRUE) AS rl_at_close
FROM decisions AS d
JOIN window_features AS ws
    ON ws.hi_idx = d.bar_idx AND ws.lo_idx = greatest(d.bar_idx - $lookback + 1, d.first_idx)
LEFT JOIN window_features AS wc
    ON wc.hi_idx = d.exit_idx AND wc.lo_idx = greatest(d.exit_idx - $lookback + 1, d.first_idx)
LEFT JOIN window_features AS wh ON wh.lo_idx = d.bar_idx AND wh.hi_idx = d.exit_idx
ASOF LEFT JOIN acct AS ad ON d.ts >= ad.closed_ts
LEFT JOIN account AS ac ON ac.trade_id = d.trade_id
ASOF LEFT JOIN policy AS ps ON d.ts >= ps.ts
LEFT JOIN close_policy AS pc ON pc.decision_id = d.decision_id
ORDER BY d.decision_id;
