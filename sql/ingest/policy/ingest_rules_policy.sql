-- The policy rules beyond the column types (schema.sql): none; a row needs a time and
-- a flag, which ingest_unparsed.sql checks. Kept so that every table has the same steps.
CREATE OR REPLACE TEMP TABLE ingest_rule_hits AS
SELECT source_row, NULL::VARCHAR AS column_name, NULL::VARCHAR AS reason
FROM ingest_typed
WHERE false;
