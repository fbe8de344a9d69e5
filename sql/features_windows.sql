-- Market features of price windows (SPEC A2, C) into the temp table `window_features`,
-- one row per distinct window of the temp table `windows(lo_idx, hi_idx)` over `bars`:
-- the bars lo_idx..hi_idx inclusive.
-- The same query labels the decision-time window (state) and the holding period
-- (the "actual regime" of the reward), so the regime rule exists once in SQL; it
-- mirrors rlv2.states.label_regime and a test proves they agree.
-- Parameters: $pressure_bars (5), $breakout_k, $trend_efficiency, $reversion_z.
CREATE OR REPLACE TEMP TABLE window_features AS
WITH distinct_windows AS (
    SELECT DISTINCT lo_idx, hi_idx FROM windows
),
exploded AS (
    -- one row per (window, bar): an equi-join on idx, not a range join
    SELECT lo_idx, hi_idx, unnest(range(lo_idx, hi_idx + 1)) AS idx FROM distinct_windows
),
joined AS (
    SELECT w.lo_idx, w.hi_idx, b.idx, b.close, b.ret, b.abs_move
    FROM exploded AS w
    JOIN bars AS b ON b.idx = w.idx
),
agg AS (
    SELECT
        lo_idx,
        hi_idx,
        count(*) AS n_bars,
        coalesce(stddev_pop(ret) FILTER (WHERE idx > lo_idx), 0.0) AS volatility,
        max(close) FILTER (WHERE idx = hi_idx) AS last_close,
        max(close) FILTER (WHERE idx = lo_idx) AS first_close,
        max(close) FILTER (WHERE idx = hi_idx - $pressure_bars + 1) AS pressure_ref,
        max(close) FILTER (WHERE idx < hi_idx) AS prior_max,
        min(close) FILTER (WHERE idx < hi_idx) AS prior_min,
        max(ret) FILTER (WHERE idx = hi_idx) AS last_ret,
        sqrt(avg(ret * ret) FILTER (WHERE idx > lo_idx AND idx < hi_idx)) AS prior_rms,
        sum(abs_move) FILTER (WHERE idx > lo_idx) AS path_length,
        avg(close) AS mean_close,
        stddev_pop(close) AS std_close
    FROM joined
    GROUP BY lo_idx, hi_idx
),
labelled AS (
    SELECT
        *,
        CASE WHEN path_length > 0 THEN abs(last_close - first_close) / path_length ELSE 0.0 END
            AS efficiency
    FROM agg
)
SELECT
    lo_idx,
    hi_idx,
    n_bars,
    volatility,
    CASE
        WHEN n_bars >= $pressure_bars
            THEN tanh((last_close - pressure_ref) / pressure_ref * 20.0)
        ELSE 0.0
    END AS market_pressure,
    CASE
        WHEN n_bars < 3 THEN 'RANGE'
        WHEN (last_close > prior_max OR last_close < prior_min)
            AND abs(last_ret) > $breakout_k * prior_rms THEN 'BREAKOUT'
        WHEN efficiency >= $trend_efficiency THEN 'TREND'
        WHEN std_close > 0 AND abs(last_close - mean_close) >= $reversion_z * std_close
            THEN 'MEAN_REVERSION'
        ELSE 'RANGE'
    END AS regime
FROM labelled;
