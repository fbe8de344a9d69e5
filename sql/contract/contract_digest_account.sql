-- The account table's row count and sha256, as contract_digest.sql gives the others; no
-- row when it is empty, so that a history without recorded equity keeps the fingerprint
-- it had before the table existed. Run only where the table exists (rlv2.store).
SELECT 'account' AS table_name, count(*) AS row_count,
    sha256(coalesce(string_agg(to_json(t)::VARCHAR, chr(10) ORDER BY t.ts), '')) AS sha256
FROM account AS t
HAVING count(*) > 0;
