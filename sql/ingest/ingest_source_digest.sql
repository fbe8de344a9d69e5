-- Fingerprints the rows of a table source as staged: sha256 of one JSON object a line,
-- in source order.
SELECT sha256(coalesce(string_agg(to_json(staged)::VARCHAR, chr(10) ORDER BY staged.source_row), ''))
    AS content_sha256
FROM ingest_source AS staged;
