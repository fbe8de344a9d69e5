-- Copies the times at which account_equity_at.sql reads the recorded equity, registered by
-- rlv2.history as the Arrow table account_times_arrow (t TIMESTAMP, i their order), into a
-- temporary table: DuckDB 1.5's ASOF join over an Arrow scan stalled for minutes on 100k
-- times, over a table it takes a second for a million. A temporary table works on a
-- read-only connection too. account_times_drop.sql drops it.
CREATE OR REPLACE TEMP TABLE account_times AS SELECT t, i FROM account_times_arrow;
