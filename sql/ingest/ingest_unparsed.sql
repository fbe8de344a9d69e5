-- Reports every value that is missing from a column the contract requires, or present but
-- unreadable as the column's type: one row per (source_row, column_name, reason).
-- Integers are typed as BIGINT here; the range of a TINYINT column (direction, side,
-- leverage) is a rule of ingest_rules_*.sql, which names the allowed values.
-- Parameters: $table (the contract table), $ts_format (quoted in a timestamp's reason).
CREATE OR REPLACE TEMP TABLE ingest_unparsed AS
WITH
contract AS (
    SELECT column_name, data_type, is_nullable
    FROM duckdb_columns()
    WHERE database_name = current_database() AND schema_name = 'main' AND table_name = $table
),
raw_blank AS (
    UNPIVOT (
        SELECT source_row, ingest_text(COLUMNS(* EXCLUDE source_row)) IS NULL FROM ingest_raw
    )
    ON COLUMNS(* EXCLUDE source_row) INTO NAME column_name VALUE is_blank
),
typed_null AS (
    UNPIVOT (
        SELECT source_row, COLUMNS(* EXCLUDE (source_row, row_key, row_content, stored_content)) IS NULL
        FROM ingest_typed
    )
    ON COLUMNS(* EXCLUDE source_row) INTO NAME column_name VALUE is_null
),
raw_values AS (
    UNPIVOT ingest_raw ON COLUMNS(* EXCLUDE source_row) INTO NAME column_name VALUE raw_value
)
SELECT
    raw_blank.source_row,
    raw_blank.column_name,
    CASE
        WHEN raw_blank.is_blank THEN 'missing value'
        WHEN contract.data_type LIKE 'ENUM(%' THEN format(
            'unknown value ''{}'' (expected one of {})',
            raw_values.raw_value,
            replace(regexp_extract(contract.data_type, '^ENUM\((.*)\)$', 1), '''', '')
        )
        WHEN contract.data_type = 'TIMESTAMP' THEN format(
            'cannot parse ''{}'' as a timestamp ({})',
            raw_values.raw_value,
            coalesce('format ' || $ts_format, 'ISO 8601; give --ts-format for another format')
        )
        ELSE format(
            'cannot parse ''{}'' as {}',
            raw_values.raw_value,
            CASE contract.data_type
                WHEN 'DOUBLE' THEN 'a number'
                WHEN 'BOOLEAN' THEN 'a boolean'
                WHEN 'BIGINT' THEN 'an integer'
                WHEN 'TINYINT' THEN 'an integer'
                ELSE contract.data_type
            END
        )
    END AS reason
FROM raw_blank
JOIN typed_null USING (source_row, column_name)
JOIN contract USING (column_name)
LEFT JOIN raw_values USING (source_row, column_name)
WHERE (raw_blank.is_blank AND NOT contract.is_nullable)
    OR (NOT raw_blank.is_blank AND typed_null.is_null);
