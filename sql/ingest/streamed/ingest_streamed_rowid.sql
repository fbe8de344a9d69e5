-- The largest rowid of candles before a streamed load (-1 if empty): the rows the load
-- appends get larger ones, which is how ingest_streamed_check.sql tells them apart
-- (rlv2.ingest also checks that it finds exactly as many as were inserted).
SELECT coalesce(max(rowid), -1) FROM candles;
