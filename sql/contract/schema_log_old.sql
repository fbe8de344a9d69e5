-- Whether ingest_log still has the CHECK of a database made before the account table,
-- which lists five target tables and so refuses an ingest into account: 1 if so, else 0.
-- rlv2.store.apply_schema then rebuilds the log (schema_log_stash.sql, schema.sql,
-- schema_log_restore.sql); DuckDB cannot drop or alter a CHECK.
SELECT count(*) AS old_log
FROM duckdb_constraints()
WHERE database_name = current_database()
    AND schema_name = 'main'
    AND table_name = 'ingest_log'
    AND constraint_type = 'CHECK'
    AND constraint_text LIKE '%target_table IN%'
    AND constraint_text NOT LIKE '%''account''%';
