-- Numbers the rows read (ingest_read, in source order) as data rows of the source, for a
-- source of which no record was set aside (ingest_rejected is empty): row n of the source
-- is the n-th row read. A view: the rows are not copied.
CREATE OR REPLACE TEMP VIEW ingest_source AS
SELECT rowid + 1 AS source_row, *
FROM ingest_read;
