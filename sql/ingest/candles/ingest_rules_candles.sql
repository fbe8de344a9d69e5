-- The candles rules beyond the column types (schema.sql): positive finite prices, a
-- non-negative volume, and a bar whose high and low bound its open and close.
-- One row per (source_row, column_name, reason); a NULL (unparsed) value breaks no rule here,
-- and the shape of a bar is judged only when its four prices are finite.
CREATE OR REPLACE TEMP TABLE ingest_rule_hits AS
WITH
prices AS (
    UNPIVOT (SELECT source_row, open, high, low, close FROM ingest_typed)
    ON open, high, low, close INTO NAME column_name VALUE price
),
finite_bars AS (
    SELECT source_row, open, high, low, close
    FROM ingest_typed
    WHERE isfinite(open) AND isfinite(high) AND isfinite(low) AND isfinite(close)
)
SELECT source_row, column_name, format('price must be finite and > 0, got {}', price) AS reason
FROM prices
WHERE NOT ingest_is_price(price)
UNION ALL
SELECT source_row, 'volume', format('volume must be finite and >= 0, got {}', volume)
FROM ingest_typed
WHERE NOT ingest_is_nonnegative(volume)
UNION ALL
SELECT source_row, 'high', format('high {} is below low {}', high, low)
FROM finite_bars
WHERE high < low
UNION ALL
SELECT source_row, 'high', format('high {} is below open {} or close {}', high, open, close)
FROM finite_bars
WHERE high >= low AND high < greatest(open, close)
UNION ALL
SELECT source_row, 'low', format('low {} is above open {} or close {}', low, open, close)
FROM finite_bars
WHERE high >= low AND low > least(open, close)
UNION ALL
SELECT source_row, 'symbol', ingest_symbol_problem(symbol)
FROM ingest_typed
WHERE ingest_symbol_problem(symbol) IS NOT NULL;
