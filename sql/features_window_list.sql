-- The price windows the decisions need, into the temp table `windows(lo_idx, hi_idx)`:
-- the lookback window ending at the decision bar (the state), the one ending at the
-- exit bar (the state at close, s'), and the holding period entry..exit (the "actual
-- regime"). Windows never reach before the symbol's first bar.
-- Parameters: $lookback (bars in a state window, 20).
CREATE OR REPLACE TEMP TABLE windows AS
SELECT greatest(bar_idx - $lookback + 1, first_idx) AS lo_idx, bar_idx AS hi_idx
FROM decisions
UNION
SELECT greatest(exit_idx - $lookback + 1, first_idx), exit_idx
FROM decisions WHERE exit_idx IS NOT NULL
UNION
SELECT bar_idx, exit_idx
FROM decisions WHERE exit_idx IS NOT NULL;
