-- Drops the temporary table of account_times_load.sql.
DROP TABLE IF EXISTS account_times;
