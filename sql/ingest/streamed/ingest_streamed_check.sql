-- Whether the rows a streamed load appended (rowid > $after) have distinct keys, cheaply:
-- rows in strictly increasing (symbol, ts) or (ts, symbol) order, in the order scanned,
-- cannot repeat a key, and a file of bars in time order passes in one streaming pass.
-- Returns the rows appended, the order breaks of each ordering (one 0 proves the keys
-- distinct; otherwise ingest_streamed_repeats.sql counts exactly), the rows' ts range and
-- their highest price (the ingest's sane bounds: rlv2.ingest.IngestRequest).
WITH
appended AS (
    SELECT
        symbol,
        ts,
        high,
        lag(symbol) OVER () AS prev_symbol,
        lag(ts) OVER () AS prev_ts
    FROM candles
    WHERE rowid > $after
)
SELECT
    count(*) AS rows_appended,
    count(*) FILTER (
        WHERE NOT (symbol > prev_symbol OR (symbol = prev_symbol AND ts > prev_ts))
    ) AS symbol_ts_breaks,
    count(*) FILTER (
        WHERE NOT (ts > prev_ts OR (ts = prev_ts AND symbol > prev_symbol))
    ) AS ts_symbol_breaks,
    min(ts) AS first_ts,
    max(ts) AS last_ts,
    max(high) AS max_price
FROM appended;
