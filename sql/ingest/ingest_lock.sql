-- Writes the table's row of ingest_lock (schema.sql) in the ingest's transaction: of two
-- ingests into one table at once, the second fails here or at its commit, changing nothing.
-- Parameters: $table, $ingest_id.
INSERT INTO ingest_lock VALUES ($table, $ingest_id)
ON CONFLICT DO UPDATE SET ingest_id = excluded.ingest_id;
