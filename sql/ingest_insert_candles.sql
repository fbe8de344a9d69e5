-- Inserts the staged candles rows whose verdict is 'load' (ingest_triage.sql); returns the count.
INSERT INTO candles BY NAME
SELECT typed.* EXCLUDE (source_row, row_key, row_content, stored_content)
FROM ingest_typed AS typed
JOIN ingest_triage AS triage USING (source_row)
WHERE triage.verdict = 'load'
ORDER BY typed.source_row;
