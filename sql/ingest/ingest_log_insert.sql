-- Records one ingest in ingest_log.
INSERT INTO ingest_log (
    ingest_id, source, source_format, target_table, content_sha256, options,
    rows_read, rows_loaded, rows_duplicate, rows_quarantined, started_at, finished_at
)
VALUES (
    $ingest_id, $source, $source_format, $target_table, $content_sha256, $options,
    $rows_read, $rows_loaded, $rows_duplicate, $rows_quarantined, $started_at, $finished_at
);
