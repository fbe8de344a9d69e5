-- First half of converting a database whose ids are BIGINT (schema_ids_numeric.sql) to
-- text ids: DuckDB changes the type of no key column, so the three tables holding ids are
-- copied into temporary tables and dropped (positions, trades, signals: each after the
-- tables referencing it). rlv2.store.apply_schema then runs schema.sql, which creates them
-- anew with VARCHAR ids, and schema_ids_restore.sql. All of it in one transaction.
CREATE OR REPLACE TEMP TABLE schema_ids_signals AS SELECT * FROM signals;
CREATE OR REPLACE TEMP TABLE schema_ids_trades AS SELECT * FROM trades;
CREATE OR REPLACE TEMP TABLE schema_ids_positions AS SELECT * FROM positions;
DROP TABLE positions;
DROP TABLE trades;
DROP TABLE signals;
