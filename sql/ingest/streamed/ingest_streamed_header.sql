-- The columns of a CSV as ingest_read_csv.sql would name them (sniffed from a sample).
-- Parameters: $path, $header.
DESCRIBE SELECT * FROM read_csv($path, all_varchar = true, header = $header);
