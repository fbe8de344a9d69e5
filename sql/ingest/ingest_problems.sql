-- The quarantine rows of one ingest, in source order, for the report.
-- Parameters: $ingest_id, $limit.
SELECT source_row, column_name, reason
FROM quarantine
WHERE ingest_id = $ingest_id
ORDER BY source_row, column_name NULLS FIRST, reason
LIMIT $limit;
