-- The indexed bars (temp table `bars`) as the replay's price arrays, in index order.
SELECT symbol, ts, idx, high, low, close, first_idx, last_idx FROM bars ORDER BY idx;
