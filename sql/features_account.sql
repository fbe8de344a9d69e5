-- Account features after each closed trade, in close order (SPEC A2, C): the equity
-- curve, drawdown-based account health, and over the trailing $window closed trades
-- (20) the win rate (pnl_pct > 0), the Sharpe signal of returns pnl_pct / 100
-- (risk-free 0, population std; 0 under two trades or with zero spread) and the
-- equity-curve slope (least squares over the trade index, over mean equity).
-- Equity = $initial_equity + $margin_unit * cumulative pnl_pct / 100 (rlv2.outcomes).
-- Reads only positions closed at or before each row's close: no look-ahead.
CREATE OR REPLACE TEMP TABLE account AS
WITH closed AS (
    SELECT
        po.trade_id,
        po.closed_ts,
        po.pnl_pct,
        row_number() OVER (ORDER BY po.closed_ts, po.trade_id) AS k
    FROM positions AS po
),
equity AS (
    SELECT
        *,
        $initial_equity + $margin_unit * sum(pnl_pct) OVER w_run / 100.0 AS equity
    FROM closed
    WINDOW w_run AS (ORDER BY k ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
SELECT
    trade_id,
    closed_ts,
    k,
    pnl_pct,
    equity,
    equity / greatest($initial_equity, max(equity) OVER w_run) AS account_health,
    avg(CASE WHEN pnl_pct > 0 THEN 1.0 ELSE 0.0 END) OVER w_trail AS winrate,
    CASE
        WHEN count(*) OVER w_trail >= 2 AND stddev_pop(pnl_pct / 100.0) OVER w_trail > 0
            THEN tanh(avg(pnl_pct / 100.0) OVER w_trail / stddev_pop(pnl_pct / 100.0) OVER w_trail)
        ELSE 0.0
    END AS sharpe_signal,
    CASE
        WHEN count(*) OVER w_trail >= 2 AND avg(equity) OVER w_trail <> 0
            THEN coalesce(regr_slope(equity, k) OVER w_trail, 0.0) / avg(equity) OVER w_trail
        ELSE 0.0
    END AS equity_curve_slope
FROM equity
WINDOW
    w_run AS (ORDER BY k ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
    w_trail AS (ORDER BY k ROWS BETWEEN $window - 1 PRECEDING AND CURRENT ROW)
ORDER BY k;
