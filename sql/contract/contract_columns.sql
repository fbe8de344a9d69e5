-- The columns of a contract table in declaration order, with whether each may be NULL.
-- Parameter: $table.
SELECT column_name, is_nullable
FROM duckdb_columns()
WHERE database_name = current_database() AND schema_name = 'main' AND table_name = $table
ORDER BY column_index;
