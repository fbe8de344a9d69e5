-- How many identifier columns of the contract tables are not text: a database made when
-- signal_id and trade_id were BIGINT has four (rlv2.store.apply_schema then converts it,
-- schema_ids_stash.sql and schema_ids_restore.sql); one made by schema.sql as it is, none.
SELECT count(*) AS numeric_ids
FROM duckdb_columns()
WHERE database_name = current_database()
    AND schema_name = 'main'
    AND (
        (table_name = 'signals' AND column_name = 'signal_id')
        OR (table_name = 'trades' AND column_name IN ('trade_id', 'signal_id'))
        OR (table_name = 'positions' AND column_name = 'trade_id')
    )
    AND data_type <> 'VARCHAR';
