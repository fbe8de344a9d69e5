-- The decision time before which the first (1 - $holdout_fraction) of the decision
-- points lie: the walk-forward split by count, not by calendar span, so that symbols
-- with different histories still leave a holdout of the requested share. Only decisions
-- before $end count (a sweep cuts its validation window out of the training window).
SELECT quantile_disc(ts, 1.0 - $holdout_fraction) AS holdout_start
FROM (SELECT DISTINCT symbol, ts FROM signals WHERE ts < $end);
