-- Whether contract table $table has an index that refuses a repeated key: a PRIMARY KEY or
-- UNIQUE constraint, or a unique index. candles has none (schema.sql).
SELECT
    EXISTS (
        SELECT 1
        FROM duckdb_constraints()
        WHERE database_name = current_database()
            AND schema_name = 'main'
            AND table_name = $table
            AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')
    )
    OR EXISTS (
        SELECT 1
        FROM duckdb_indexes()
        WHERE database_name = current_database()
            AND schema_name = 'main'
            AND table_name = $table
            AND is_unique
    );
