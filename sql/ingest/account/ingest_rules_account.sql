-- The account rules beyond the column types (schema.sql): an equity finite and > 0 (an
-- account at 0 or below has nothing to put up; rlv2 takes ratios of equities).
CREATE OR REPLACE TEMP TABLE ingest_rule_hits AS
SELECT source_row, 'equity' AS column_name,
    format('equity must be finite and > 0, got {}', equity) AS reason
FROM ingest_typed
WHERE NOT ingest_is_price(equity);
