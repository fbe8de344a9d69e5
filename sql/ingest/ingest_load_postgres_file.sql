-- Loads DuckDB's postgres extension from a file: the copy the PyPI package
-- duckdb-extension-postgres-scanner ships for this DuckDB version (no network needed).
-- {location} is the file's path as a quoted SQL literal, inlined by rlv2.ingest (LOAD takes
-- no parameters).
LOAD {location};
