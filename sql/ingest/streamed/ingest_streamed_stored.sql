-- How many rows a streamed load appended (rowid > $after) repeat the key of a row stored
-- before it. Only stored rows of the appended symbols within the appended ts range
-- [$first_ts, $last_ts] can: a load of later bars than those stored skips them all by
-- their zone maps, and the join is then over an empty table.
WITH
appended AS (SELECT symbol, ts FROM candles WHERE rowid > $after),
stored AS (
    SELECT symbol, ts
    FROM candles
    WHERE rowid <= $after
        AND ts BETWEEN $first_ts AND $last_ts
        AND symbol IN (SELECT DISTINCT symbol FROM appended)
)
SELECT count(*)
FROM appended
SEMI JOIN stored USING (symbol, ts);
