-- Names every finite value of the columns {columns} outside the sane range [$low, $high)
-- (see ingest_bounds_unjudge.sql), one row per (source row, column), beside the table's
-- own rules in ingest_rule_hits. $range is the range as the reason shows it. Run once
-- per kind, after ingest_rules_TABLE.sql.
INSERT INTO ingest_rule_hits
SELECT source_row, column_name, format('{{}} is outside the sane range {{}}', value, $range)
FROM (
    UNPIVOT (SELECT source_row, {columns} FROM ingest_typed)
    ON {columns} INTO NAME column_name VALUE value
)
WHERE isfinite(value) AND (value < $low OR value >= $high);
