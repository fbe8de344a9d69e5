-- Fingerprints the contents of the contract tables: per table its row count and the sha256
-- of its rows as JSON lines in key order. The ingest bookkeeping (ingest_log, quarantine)
-- is left out, so an idempotent re-ingest leaves the digest as it was.
SELECT 'candles' AS table_name, count(*) AS row_count,
    sha256(coalesce(string_agg(to_json(t)::VARCHAR, chr(10) ORDER BY t.symbol, t.ts), '')) AS sha256
FROM candles AS t
UNION ALL
SELECT 'policy', count(*), sha256(coalesce(string_agg(to_json(t)::VARCHAR, chr(10) ORDER BY t.ts), ''))
FROM policy AS t
UNION ALL
SELECT 'positions', count(*),
    sha256(coalesce(string_agg(to_json(t)::VARCHAR, chr(10) ORDER BY t.trade_id), ''))
FROM positions AS t
UNION ALL
SELECT 'signals', count(*),
    sha256(coalesce(string_agg(to_json(t)::VARCHAR, chr(10) ORDER BY t.signal_id), ''))
FROM signals AS t
UNION ALL
SELECT 'trades', count(*),
    sha256(coalesce(string_agg(to_json(t)::VARCHAR, chr(10) ORDER BY t.trade_id), ''))
FROM trades AS t
ORDER BY table_name;
