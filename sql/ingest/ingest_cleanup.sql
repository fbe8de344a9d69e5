-- Drops the temporary tables and views of an ingest, so that the connection is left as it
-- was. Views first: they refer to the tables.
DROP VIEW IF EXISTS ingest_mapped;
DROP VIEW IF EXISTS ingest_source;
DROP TABLE IF EXISTS ingest_reject_errors;
DROP TABLE IF EXISTS ingest_reject_scans;
DROP TABLE IF EXISTS ingest_rejected;
DROP TABLE IF EXISTS ingest_numbered;
DROP TABLE IF EXISTS ingest_read;
DROP TABLE IF EXISTS ingest_checked;
DROP TABLE IF EXISTS ingest_raw;
DROP TABLE IF EXISTS ingest_typed;
DROP TABLE IF EXISTS ingest_unparsed;
DROP TABLE IF EXISTS ingest_rule_hits;
DROP TABLE IF EXISTS ingest_triage;
