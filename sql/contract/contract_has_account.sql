-- Whether the database has the account table (a database made before it, read-only, has
-- not): 1 or 0. Readers of the recorded equity ask first (rlv2.store, rlv2.history).
SELECT count(*) AS has_account
FROM duckdb_tables()
WHERE database_name = current_database() AND schema_name = 'main' AND table_name = 'account';
