-- Draws the number of a new ingest.
SELECT nextval('ingest_id_seq') AS ingest_id;
