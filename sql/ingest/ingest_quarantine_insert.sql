-- Quarantines the rows that broke the contract: every problem of ingest_triage with the
-- source row as read, and every malformed CSV record of ingest_rejected with its text.
INSERT INTO quarantine (
    ingest_id, source_file, source_row, target_table, column_name, reason, raw_record, ingested_at
)
SELECT $ingest_id, $source, triage.source_row, $target_table, triage.column_name, triage.reason,
    to_json(struct_pack(*COLUMNS(raw.* EXCLUDE (source_row)))), $ingested_at
FROM ingest_triage AS triage
JOIN ingest_source AS raw USING (source_row)
WHERE triage.verdict = 'quarantine'
UNION ALL
SELECT $ingest_id, $source, source_row, $target_table, column_name, reason,
    to_json({'line': raw_line}), $ingested_at
FROM ingest_rejected
ORDER BY 3, 5;
