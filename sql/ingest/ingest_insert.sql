-- Inserts the rows to load (ingest_checked, after ingest_verdicts.sql) into the contract
-- table {table}; returns the count. {table} is the quoted name of one of the five contract
-- tables, inlined by rlv2.ingest (a table name cannot be a parameter); ingest_checked holds
-- exactly that table's columns, typed. The order of rows in a table is not part of the
-- contract (its readers order by key).
INSERT INTO {table} BY NAME
SELECT checked.* EXCLUDE (source_row, verdict)
FROM ingest_checked AS checked
WHERE checked.verdict = 'load';
