-- Puts back the rows schema_log_stash.sql set aside, into the tables schema.sql made anew.
INSERT INTO ingest_log BY NAME SELECT * FROM schema_log_stash;
INSERT INTO quarantine BY NAME SELECT * FROM schema_quarantine_stash;
DROP TABLE schema_log_stash;
DROP TABLE schema_quarantine_stash;
