-- The number of threads this connection runs queries on.
SELECT current_setting('threads')::INTEGER AS threads;
