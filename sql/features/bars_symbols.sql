-- The symbols that have candles, in code order (the order of `bars_arrays.sql` and of
-- `$symbols` in features_decisions.sql), with their number of bars.
SELECT symbol, count(*) AS n_bars FROM candles GROUP BY symbol ORDER BY symbol;
