-- Reads a Parquet file, every column cast to VARCHAR, in file order.
-- Parameter: $path.
CREATE OR REPLACE TEMP TABLE ingest_read AS
SELECT COLUMNS(*)::VARCHAR
FROM read_parquet($path);
