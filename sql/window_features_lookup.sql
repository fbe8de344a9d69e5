-- Window features in the order the caller asked for them (`requested_windows.pos`).
-- Requires the temp tables requested_windows(pos, lo_idx, hi_idx) and window_features.
SELECT f.*
FROM requested_windows AS r
JOIN window_features AS f USING (lo_idx, hi_idx)
ORDER BY r.pos;
