-- The live system's recorded equity (the optional account table) in force at each time of
-- $times_us: that of the latest row with ts <= t, an as-of join, so nothing recorded after t
-- is seen. Before the first row, the first row's equity (the earliest known; the account
-- features then read full health and a flat curve, their neutral values). As a ratio to
-- the first recorded equity: rlv2 works in units of it (= the model's initial equity,
-- 100), so a bust floor or a chart means the same as in the model, and health, slope and
-- exposure, which are ratios, are those of the recorded equity. With it, peak_ratio: the
-- highest equity recorded up to t (account health is equity over it). One row per time,
-- in the order of $times_us. Run only on a database with account rows (rlv2.history).
-- Parameter: $times_us (the times as microseconds since the epoch, a list of BIGINT).
WITH
times AS (
    SELECT make_timestamp(unnest($times_us::BIGINT[])) AS t,
        unnest(range(len($times_us::BIGINT[]))) AS i
),
first_recorded AS (
    SELECT equity FROM account ORDER BY ts LIMIT 1
),
peaks AS (
    SELECT ts, equity, max(equity) OVER (ORDER BY ts) AS peak FROM account
)
SELECT
    coalesce(peaks.equity, first_recorded.equity) / first_recorded.equity AS equity_ratio,
    coalesce(peaks.peak, first_recorded.equity) / first_recorded.equity AS peak_ratio
FROM times
CROSS JOIN first_recorded
ASOF LEFT JOIN peaks ON times.t >= peaks.ts
ORDER BY times.i;
