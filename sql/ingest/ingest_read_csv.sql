-- Reads a CSV file, every column as VARCHAR, in file order. The delimiter, quoting and
-- line endings are sniffed. A record that cannot be split into the header's columns
-- (too many or too few fields, an unterminated quote, invalid UTF-8) does not stop the
-- read: DuckDB stores it in ingest_reject_errors and ingest_rejected_csv.sql takes it.
-- An unnamed header cell is called column0, column1, ... by its position.
-- A record longer than $max_line_size bytes fails the read (rlv2.ingest names its line).
-- Parameters: $path, $header (whether the first line names the columns), $max_line_size.
CREATE OR REPLACE TEMP TABLE ingest_read AS
SELECT *
FROM read_csv(
    $path,
    all_varchar = true,
    header = $header,
    max_line_size = $max_line_size,
    store_rejects = true,
    rejects_table = 'ingest_reject_errors',
    rejects_scan = 'ingest_reject_scans'
);
