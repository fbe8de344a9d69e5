-- Every stored candle, for building the demo history from whatever bars the user loaded.
SELECT symbol, ts, open, high, low, close, volume FROM candles ORDER BY symbol, ts;
