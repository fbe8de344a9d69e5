-- Second half of the id conversion (schema_ids_stash.sql): the rows copied aside go back
-- into the tables schema.sql created anew, each id as its text (7 becomes '7'); columns a
-- table of the earlier contract lacked (trades' per-agent propensities) are NULL.
INSERT INTO signals BY NAME
SELECT * REPLACE (signal_id::VARCHAR AS signal_id) FROM schema_ids_signals;
INSERT INTO trades BY NAME
SELECT * REPLACE (trade_id::VARCHAR AS trade_id, signal_id::VARCHAR AS signal_id)
FROM schema_ids_trades;
INSERT INTO positions BY NAME
SELECT * REPLACE (trade_id::VARCHAR AS trade_id) FROM schema_ids_positions;
DROP TABLE schema_ids_signals;
DROP TABLE schema_ids_trades;
DROP TABLE schema_ids_positions;
