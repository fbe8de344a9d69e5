-- Collects the CSV records that could not be split into columns, one row per record,
-- numbered as data rows: DuckDB's `line` counts the header line, source_row does not.
-- DuckDB may report one error per missing field; the first (by field) is kept. No column
-- is named: the record has none that can be trusted.
-- Parameter: $header (whether the file has a header line).
INSERT INTO ingest_rejected
SELECT
    line - CASE WHEN $header THEN 1 ELSE 0 END AS source_row,
    NULL AS column_name,
    'malformed CSV record: ' || first(error_message ORDER BY column_idx) AS reason,
    first(csv_line ORDER BY column_idx) AS raw_line
FROM ingest_reject_errors
GROUP BY line;
