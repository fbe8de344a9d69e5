-- Takes the verdict from the rows whose columns {columns} hold a finite value outside the
-- sane range [$low, $high): a year 20190 or a price of 1e308 keeps the contract's types
-- and rules, and broke training far from the row it came from. The bounds are the
-- ingest's settings (rlv2.ingest.IngestRequest: earliest, latest, max_price); the rows go
-- to the triage, where ingest_rules_bounds.sql names them. {columns}: the table's time or
-- price columns, quoted; run once per kind, after ingest_checked_TABLE.sql.
UPDATE ingest_checked SET verdict = NULL
WHERE verdict IS NOT NULL AND source_row IN (
    SELECT source_row
    FROM (
        UNPIVOT (SELECT source_row, {columns} FROM ingest_checked)
        ON {columns} INTO NAME column_name VALUE value
    )
    WHERE isfinite(value) AND (value < $low OR value >= $high)
);
