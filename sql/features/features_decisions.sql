-- Decision points in [$start, $end), one row each (per trade executed on it): the signal
-- rows of one (symbol, ts) pivoted by model, and the trade executed on it with its
-- close. The account state before the decision and after the close comes from
-- account_closes.sql and rlv2.account, the RL switch from policy_switches.sql.
-- Unordered: rlv2.history orders the rows by (ts, symbol, trade_id). trade_id comes back
-- as the trade's code: the position of its id in the text order of all trade_ids, from 0,
-- computed as account_closes.sql computes it (ids are text, schema.sql; the replay keeps
-- int64 arrays); NULL (-1 in the replay) without a trade. The order of trades at one
-- decision point is therefore the order of their ids' text. The bars (the last
-- bar with bar.ts <= ts, the bar of the close) and the market features over them are
-- found by rlv2.market's kernels from symbol_code, the symbol's position in $symbols,
-- the bar arrays' symbols from bars_symbols.sql (NULL: no candles; such a decision has
-- no state and is dropped, as is one before its symbol's first bar).
-- Enum columns come back as their codes (enum_code = the rlv2.domain IntEnum value). A
-- direction of a model without a signal, and the side of a decision without a trade,
-- are 0, not NULL: their values are -1 and +1, so the usual -1 for a NULL would read as
-- short.
-- The per-agent propensities (meta_action_prob, sizing_action_prob) are NULL where not
-- logged, and in a database made before they joined the contract and not upgraded since
-- (../contract/schema_upgrade.sql runs at the next ingest; a reader opens the file
-- read-only): contract_trades gives trades those columns when it lacks them.
-- Parameters: $start, $end, $symbols (VARCHAR[]).
WITH contract_trades AS (
    SELECT *
    FROM (SELECT NULL::DOUBLE AS meta_action_prob, NULL::DOUBLE AS sizing_action_prob WHERE false)
    UNION ALL BY NAME
    SELECT * FROM trades
),
trade_codes AS (
    SELECT trade_id, dense_rank() OVER (ORDER BY trade_id::VARCHAR) - 1 AS trade_code
    FROM trades
),
points AS (
    SELECT
        symbol,
        ts,
        coalesce(max(direction) FILTER (WHERE model = 'XGB'::model_enum), 0::TINYINT)
            AS dir_xgb,
        coalesce(max(direction) FILTER (WHERE model = 'LGBM'::model_enum), 0::TINYINT)
            AS dir_lgbm,
        coalesce(max(direction) FILTER (WHERE model = 'NHITS'::model_enum), 0::TINYINT)
            AS dir_nhits,
        coalesce(max(direction) FILTER (WHERE model = 'PATCHTST'::model_enum), 0::TINYINT)
            AS dir_patchtst,
        max(confidence) FILTER (WHERE model = 'XGB'::model_enum) AS conf_xgb,
        max(confidence) FILTER (WHERE model = 'LGBM'::model_enum) AS conf_lgbm,
        max(confidence) FILTER (WHERE model = 'NHITS'::model_enum) AS conf_nhits,
        max(confidence) FILTER (WHERE model = 'PATCHTST'::model_enum) AS conf_patchtst,
        max(enum_code(predicted_regime)) FILTER (WHERE model = 'XGB'::model_enum) AS regime_xgb,
        max(enum_code(predicted_regime)) FILTER (WHERE model = 'LGBM'::model_enum) AS regime_lgbm,
        max(enum_code(predicted_regime)) FILTER (WHERE model = 'NHITS'::model_enum) AS regime_nhits,
        max(enum_code(predicted_regime)) FILTER (WHERE model = 'PATCHTST'::model_enum) AS regime_patchtst,
        max(confidence) AS confidence
    FROM signals
    WHERE ts >= $start AND ts < $end
    GROUP BY symbol, ts
),
executed AS (
    SELECT
        s.symbol,
        s.ts,
        c.trade_code AS trade_id,
        enum_code(s.model) AS trade_model,
        s.confidence AS trade_confidence,
        enum_code(s.predicted_regime) AS trade_predicted_regime,
        enum_code(t.strategy) AS strategy,
        enum_code(t.weight_action) AS weight_action,
        t.size_multiplier,
        t.leverage,
        t.portfolio_exposure,
        t.action_prob,
        t.meta_action_prob,
        t.sizing_action_prob,
        t.side,
        t.ts AS trade_ts,
        po.closed_ts,
        po.pnl_pct,
        po.max_drawdown_pct
    FROM contract_trades AS t
    JOIN signals AS s ON s.signal_id = t.signal_id
    JOIN trade_codes AS c ON c.trade_id = t.trade_id
    LEFT JOIN positions AS po ON po.trade_id = t.trade_id
    WHERE s.ts >= $start AND s.ts < $end
)
SELECT
    list_position($symbols, p.symbol) - 1 AS symbol_code,
    p.* EXCLUDE (symbol),
    e.* EXCLUDE (symbol, ts, side),
    coalesce(e.side, 0::TINYINT) AS side
FROM points AS p
LEFT JOIN executed AS e ON e.symbol = p.symbol AND e.ts = p.ts;
