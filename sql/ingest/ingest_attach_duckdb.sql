-- Attaches another DuckDB database file, read-only, as ingest_src.
-- {location} is the file's path as a quoted SQL literal, inlined by rlv2.ingest because
-- ATTACH takes no parameters before DuckDB 2.0.
ATTACH {location} AS ingest_src (READ_ONLY);
