-- Reads a table (or view) of the attached source database, every column cast to VARCHAR,
-- in the order the source returns its rows.
-- Parameter: $table, the table's name inside ingest_src: 'trades' or 'schema.trades'.
CREATE OR REPLACE TEMP TABLE ingest_read AS
SELECT COLUMNS(*)::VARCHAR
FROM query_table('ingest_src.' || $table);
