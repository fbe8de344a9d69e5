-- The signals rules beyond the column types (schema.sql): direction +1 or -1,
-- confidence in [0, 1], and one forecast per model at a decision point: a signal_id other
-- than the stored one, or other signal_ids in the same file, for the same
-- (symbol, ts, model) is a conflict.
CREATE OR REPLACE TEMP TABLE ingest_rule_hits AS
SELECT source_row, 'direction' AS column_name,
    format('direction must be -1 or +1, got {}', direction) AS reason
FROM ingest_typed
WHERE NOT ingest_is_sign(direction)
UNION ALL
SELECT source_row, 'confidence', format('confidence must be in [0, 1], got {}', confidence)
FROM ingest_typed
WHERE NOT ingest_is_unit_interval(confidence)
UNION ALL
SELECT typed.source_row, 'model', format(
    'signal {} is already stored for this (symbol, ts, model)', stored.signal_id
)
FROM ingest_typed AS typed
JOIN signals AS stored USING (symbol, ts, model)
WHERE stored.signal_id <> typed.signal_id
UNION ALL
SELECT typed.source_row, 'model', format(
    'rows {} give this (symbol, ts, model) different signal_ids', clash.source_rows
)
FROM ingest_typed AS typed
JOIN (
    SELECT symbol, ts, model, string_agg(source_row::VARCHAR, ', ' ORDER BY source_row) AS source_rows
    FROM ingest_typed
    WHERE signal_id IS NOT NULL
    GROUP BY symbol, ts, model
    HAVING count(DISTINCT signal_id) > 1
) AS clash USING (symbol, ts, model)
UNION ALL
SELECT source_row, 'symbol', ingest_symbol_problem(symbol)
FROM ingest_typed
WHERE ingest_symbol_problem(symbol) IS NOT NULL;
