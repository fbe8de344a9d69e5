-- Names the staged rows (ingest_source) by the contract: source_row and one VARCHAR column
-- per contract column, taken from its source column, a constant, or NULL. A view: the rows
-- are not copied. {columns} is the select list, built by rlv2.ingest from the column plan
-- (the identifiers come from the source's header, so they are quoted there, and a
-- constant is inlined as a quoted literal, since a view takes no parameters).
CREATE OR REPLACE TEMP VIEW ingest_mapped AS
SELECT source_row, {columns}
FROM ingest_source;
