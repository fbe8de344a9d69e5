-- Attaches a PostgreSQL database through DuckDB's postgres extension, read-only, as
-- ingest_src. {location} is the DSN (a libpq key=value string or a postgresql:// URI) as a
-- quoted SQL literal, inlined by rlv2.ingest because ATTACH takes no parameters before
-- DuckDB 2.0.
ATTACH {location} AS ingest_src (TYPE postgres, READ_ONLY);
