-- Every candle of every symbol with a global bar index, its return and its absolute move.
-- idx runs over (symbol, ts); first_idx / last_idx bound each symbol's bars so that no
-- window or price path crosses into another symbol. ret = (close - prev) / prev, the
-- simple return of SPEC A2; NULL on a symbol's first bar.
CREATE OR REPLACE TEMP TABLE bars AS
WITH numbered AS (
    SELECT
        symbol,
        ts,
        high,
        low,
        close,
        row_number() OVER (ORDER BY symbol, ts) - 1 AS idx,
        lag(close) OVER (PARTITION BY symbol ORDER BY ts) AS prev_close
    FROM candles
)
SELECT
    symbol,
    ts,
    idx,
    high,
    low,
    close,
    (close - prev_close) / prev_close AS ret,
    abs(close - prev_close) AS abs_move,
    min(idx) OVER (PARTITION BY symbol) AS first_idx,
    max(idx) OVER (PARTITION BY symbol) AS last_idx
FROM numbered
ORDER BY idx;
