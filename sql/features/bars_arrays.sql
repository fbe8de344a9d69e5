-- Every candle of every symbol in (symbol, ts) order: the replay's price arrays. Row i is
-- bar i; each symbol's bars are contiguous, in the order of bars_symbols.sql.
SELECT ts, high, low, close FROM candles ORDER BY symbol, ts;
