-- Loads a candles CSV into candles in one streaming pass, for a source with no problem at
-- all: any value that does not parse or breaks a rule makes the INSERT fail, as does a
-- malformed record, and rlv2.ingest then rolls back and takes the staged road, which finds
-- and names every problem. The prices and the volume are parsed by read_csv as DOUBLE
-- ({types}): the same parser as the cast in ingest_double (DuckDB's TryDoubleCast, which
-- skips ASCII blanks), and a value it cannot read fails the read instead of being NULL.
-- symbol and ts are read as text and parsed by the macros of ingest_setup.sql, as in
-- ingest_checked_candles.sql (a symbol with blanks around it or a control character is
-- made NULL); a missing required value fails its NOT NULL, and a broken
-- rule one of the table's CHECKs, which state the rules of ingest_rules_candles.sql. Keys
-- are checked after the insert (ingest_streamed_check.sql). Returns the count inserted.
-- {columns}: symbol and ts as VARCHAR, the prices and volume as DOUBLE, each from its
-- source column, a constant or NULL; {types}: the DOUBLE source columns, as a struct
-- literal; both built by rlv2.ingest from the column plan.
-- Parameters: $path, $header, $ts_format.
INSERT INTO candles BY NAME
SELECT
    CASE WHEN ingest_is_symbol(mapped.symbol) THEN mapped.symbol END AS symbol,
    ingest_timestamp(mapped.ts, $ts_format) AS ts,
    mapped.open,
    mapped.high,
    mapped.low,
    mapped.close,
    mapped.volume
FROM (
    SELECT {columns}
    FROM read_csv($path, all_varchar = true, header = $header, types = {types})
) AS mapped;
