-- Gives every staged row its verdict: 'quarantine' (one row per problem: an unparsed value,
-- a broken rule, or a key conflict), 'duplicate' (identical to a stored row or to an
-- earlier row of the source), or 'load'. A key conflict is a key already stored with other
-- values, or a key that rows of the source give different values; all those rows are
-- quarantined, since which one is right cannot be told.
CREATE OR REPLACE TEMP TABLE ingest_triage AS
WITH
problems AS (
    SELECT source_row, column_name, reason FROM ingest_unparsed
    UNION ALL
    SELECT source_row, column_name, reason FROM ingest_rule_hits
),
clean AS (
    SELECT source_row, row_key, row_content, stored_content
    FROM ingest_typed
    WHERE source_row NOT IN (SELECT source_row FROM problems)
),
key_groups AS (
    SELECT
        row_key,
        count(DISTINCT row_content) AS variants,
        min(source_row) AS first_row,
        string_agg(source_row::VARCHAR, ', ' ORDER BY source_row) AS source_rows
    FROM clean
    GROUP BY row_key
),
judged AS (
    SELECT
        clean.source_row,
        array_to_string(json_keys(clean.row_key), ', ') AS key_columns,
        CASE
            WHEN clean.stored_content IS NOT NULL AND clean.stored_content <> clean.row_content
                THEN 'key already stored with other values: ' || clean.stored_content
            WHEN clean.stored_content IS NULL AND key_groups.variants > 1
                THEN 'rows ' || key_groups.source_rows || ' give this key different values'
        END AS conflict,
        CASE
            WHEN clean.stored_content IS NOT NULL THEN 'already stored'
            WHEN clean.source_row <> key_groups.first_row
                THEN 'repeats row ' || key_groups.first_row
        END AS duplicate_of
    FROM clean
    JOIN key_groups USING (row_key)
)
SELECT source_row, 'quarantine' AS verdict, column_name, reason FROM problems
UNION ALL
SELECT source_row, 'quarantine', key_columns, conflict FROM judged WHERE conflict IS NOT NULL
UNION ALL
SELECT source_row, 'duplicate', NULL, duplicate_of
FROM judged
WHERE conflict IS NULL AND duplicate_of IS NOT NULL
UNION ALL
SELECT source_row, 'load', NULL, NULL
FROM judged
WHERE conflict IS NULL AND duplicate_of IS NULL;
