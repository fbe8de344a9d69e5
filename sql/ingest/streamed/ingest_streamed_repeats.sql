-- The keys that the rows a streamed load appended (rowid > $after) give more than once.
SELECT count(*)
FROM (
    SELECT symbol, ts
    FROM candles
    WHERE rowid > $after
    GROUP BY symbol, ts
    HAVING count(*) > 1
);
