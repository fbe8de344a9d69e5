-- Brings a database made by an earlier contract up to schema.sql, which only creates what
-- is missing and so never changes an existing table. Run after it (rlv2.store.apply_schema,
-- before every ingest); idempotent. DuckDB adds no column with a constraint, so a column
-- added here lacks the CHECK that schema.sql gives it in a new database; the ingest applies
-- the same rule to every row it loads either way (ingest_checked_trades.sql,
-- ingest_rules_trades.sql).
-- The per-agent propensities (SPEC C), added to trades after its first release.
ALTER TABLE trades ADD COLUMN IF NOT EXISTS meta_action_prob DOUBLE;
ALTER TABLE trades ADD COLUMN IF NOT EXISTS sizing_action_prob DOUBLE;
