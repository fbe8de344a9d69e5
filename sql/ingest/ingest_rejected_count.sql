-- Counts the CSV records set aside as malformed (ingest_rejected_csv.sql).
SELECT count(*) AS records FROM ingest_rejected;
