-- The live system's recorded equity (the optional account table) in force at each time t
-- of account_times (account_times_load.sql): that of the latest row with ts <= t, an as-of
-- join, so nothing recorded after t is seen. Before the first row, the first row's equity (the earliest known; the account
-- features then read full health and a flat curve, their neutral values). As a ratio to
-- the first recorded equity: rlv2 works in units of it (= the model's initial equity,
-- 100), so a bust floor or a chart means the same as in the model, and health, slope and
-- exposure, which are ratios, are those of the recorded equity. With it, peak_ratio: the
-- highest equity recorded up to t (account health is equity over it). One row per time,
-- in the order of account_times.i. Run only on a database with account rows (rlv2.history).
WITH
first_recorded AS (
    SELECT equity FROM account ORDER BY ts LIMIT 1
),
peaks AS (
    SELECT ts, equity, max(equity) OVER (ORDER BY ts) AS peak FROM account
)
SELECT
    coalesce(peaks.equity, first_recorded.equity) / first_recorded.equity AS equity_ratio,
    coalesce(peaks.peak, first_recorded.equity) / first_recorded.equity AS peak_ratio
FROM account_times AS times
CROSS JOIN first_recorded
ASOF LEFT JOIN peaks ON times.t >= peaks.ts
ORDER BY times.i;
