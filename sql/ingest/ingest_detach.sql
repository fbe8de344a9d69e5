-- Detaches the source database attached by ingest_attach_duckdb/postgres.sql.
DETACH DATABASE IF EXISTS ingest_src;
