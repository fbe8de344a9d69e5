-- Copies ingest_log and quarantine (which references it) aside and drops both, so that
-- schema.sql creates them anew with the CHECK that admits the account table; then
-- schema_log_restore.sql puts every row back. In one transaction (rlv2.store).
CREATE OR REPLACE TEMP TABLE schema_log_stash AS SELECT * FROM ingest_log;
CREATE OR REPLACE TEMP TABLE schema_quarantine_stash AS SELECT * FROM quarantine;
DROP TABLE quarantine;
DROP TABLE ingest_log;
