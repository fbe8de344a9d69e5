-- Loads a candles CSV into candles in one streaming pass, typed by the parsers and checked
-- by the rules of ingest_checked_candles.sql (the same expressions), for a source with no
-- problem at all: any value that does not parse or breaks a rule makes the INSERT fail
-- (a required value's NULL by NOT NULL, a rule by the table's CHECKs, an unreadable volume
-- by error()), as does a malformed record, and rlv2.ingest then rolls back and takes the
-- staged path, which finds and names every problem. Keys are checked after the insert
-- (ingest_streamed_check.sql). Returns the count of rows inserted.
-- {columns} is the select list of ingest_mapped.sql, built from the column plan.
-- Parameters: $path, $header, $ts_format.
INSERT INTO candles BY NAME
SELECT
    typed.* EXCLUDE (volume, volume_text),
    CASE
        WHEN typed.volume IS NULL AND ingest_text(typed.volume_text) IS NOT NULL
            THEN error('volume: cannot parse ' || typed.volume_text)
        ELSE typed.volume
    END AS volume
FROM (
    SELECT
        ingest_text(mapped.symbol) AS symbol,
        ingest_timestamp(mapped.ts, $ts_format) AS ts,
        ingest_double(mapped.open) AS open,
        ingest_double(mapped.high) AS high,
        ingest_double(mapped.low) AS low,
        ingest_double(mapped.close) AS close,
        ingest_double(mapped.volume) AS volume,
        mapped.volume AS volume_text
    FROM (SELECT {columns} FROM read_csv($path, all_varchar = true, header = $header)) AS mapped
) AS typed;
