-- First and last decision time in the history, and how many decision points lie between.
SELECT min(ts) AS first_ts, max(ts) AS last_ts, count(DISTINCT (symbol, ts)) AS n_decisions
FROM signals;
