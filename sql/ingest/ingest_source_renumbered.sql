-- Numbers the rows read (ingest_read, in source order) as data rows of the source when
-- some CSV records were set aside: the rejected records (ingest_rejected) keep their own
-- numbers, and the rows read fill the numbers in between, in order: in a CSV with one
-- record a line, row n of ingest_source is the n-th record under the header, whatever was
-- rejected around it. The numbered rows are kept in ingest_numbered.
CREATE OR REPLACE TEMP TABLE ingest_numbered AS
WITH
read_rows AS (
    SELECT rowid + 1 AS read_row, * FROM ingest_read
),
numbers AS (
    SELECT
        n AS source_row,
        row_number() OVER (ORDER BY n) AS read_row
    FROM range(
        1,
        (SELECT count(*) FROM ingest_read) + (SELECT count(*) FROM ingest_rejected) + 1
    ) AS numbers (n)
    WHERE n NOT IN (SELECT source_row FROM ingest_rejected)
)
SELECT numbers.source_row, read_rows.* EXCLUDE (read_row)
FROM read_rows
JOIN numbers USING (read_row)
ORDER BY numbers.source_row;
CREATE OR REPLACE TEMP VIEW ingest_source AS
SELECT * FROM ingest_numbered;
