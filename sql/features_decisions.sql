-- Decision points: the signal rows of one (symbol, ts), pivoted by model, with the bar
-- known at decision time (the last bar with bar.ts <= decision ts: no look-ahead) and
-- the trade executed on it, if any, with its close and the bar of its close (exit_idx).
-- Requires the temp table `bars`.
-- Parameters: $start, $end (the decision window [start, end)).
CREATE OR REPLACE TEMP TABLE decisions AS
WITH points AS (
    SELECT
        symbol,
        ts,
        max(direction) FILTER (WHERE model = 'XGB') AS dir_xgb,
        max(direction) FILTER (WHERE model = 'LGBM') AS dir_lgbm,
        max(direction) FILTER (WHERE model = 'NHITS') AS dir_nhits,
        max(direction) FILTER (WHERE model = 'PATCHTST') AS dir_patchtst,
        max(confidence) FILTER (WHERE model = 'XGB') AS conf_xgb,
        max(confidence) FILTER (WHERE model = 'LGBM') AS conf_lgbm,
        max(confidence) FILTER (WHERE model = 'NHITS') AS conf_nhits,
        max(confidence) FILTER (WHERE model = 'PATCHTST') AS conf_patchtst,
        max(predicted_regime::VARCHAR) FILTER (WHERE model = 'XGB') AS regime_xgb,
        max(predicted_regime::VARCHAR) FILTER (WHERE model = 'LGBM') AS regime_lgbm,
        max(predicted_regime::VARCHAR) FILTER (WHERE model = 'NHITS') AS regime_nhits,
        max(predicted_regime::VARCHAR) FILTER (WHERE model = 'PATCHTST') AS regime_patchtst,
        max(confidence) AS confidence
    FROM signals
    WHERE ts >= $start AND ts < $end
    GROUP BY symbol, ts
),
anchored AS (
    SELECT p.*, b.idx AS bar_idx, b.first_idx, b.last_idx
    FROM points AS p
    ASOF JOIN bars AS b ON p.symbol = b.symbol AND p.ts >= b.ts
),
executed AS (
    SELECT
        s.symbol,
        s.ts,
        t.trade_id,
        s.model::VARCHAR AS trade_model,
        s.confidence AS trade_confidence,
        s.predicted_regime::VARCHAR AS trade_predicted_regime,
        t.strategy::VARCHAR AS strategy,
        t.weight_action::VARCHAR AS weight_action,
        t.size_multiplier,
        t.leverage,
        t.portfolio_exposure,
        t.action_prob,
        t.side,
        t.ts AS trade_ts,
        po.closed_ts,
        po.pnl_pct,
        po.max_drawdown_pct
    FROM trades AS t
    JOIN signals AS s ON s.signal_id = t.signal_id
    LEFT JOIN positions AS po ON po.trade_id = t.trade_id
    WHERE s.ts >= $start AND s.ts < $end
),
exits AS (
    -- the bar of each close (closed trades only: an ASOF join must not see NULL times)
    SELECT e.trade_id, x.idx AS exit_idx
    FROM (SELECT trade_id, symbol, closed_ts FROM executed WHERE closed_ts IS NOT NULL) AS e
    ASOF JOIN bars AS x ON x.symbol = e.symbol AND e.closed_ts >= x.ts
)
SELECT
    row_number() OVER (ORDER BY a.ts, a.symbol) - 1 AS decision_id,
    a.*,
    e.* EXCLUDE (symbol, ts),
    x.exit_idx
FROM anchored AS a
LEFT JOIN executed AS e ON e.symbol = a.symbol AND e.ts = a.ts
LEFT JOIN exits AS x ON x.trade_id = e.trade_id
ORDER BY decision_id;
