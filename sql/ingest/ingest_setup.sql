-- Prepares a connection for one ingest: the parsing macros the ingest_checked_* and
-- ingest_typed_* queries use, an empty ingest_rejected, and no leftovers of an earlier
-- ingest on this connection. Every value arrives as VARCHAR; a parser returns NULL for a
-- value it cannot read, and ingest_unparsed.sql reports it.
-- A parser first tries the plain cast, which skips ASCII blanks around a value itself and
-- is several times faster than trim(); only a value the plain cast rejects is trimmed
-- (trim also removes Unicode spaces) and cast again. Whenever the plain cast succeeds, the
-- trimmed cast gives the same value, so the result is that of the trimmed cast alone.
CREATE OR REPLACE TEMP MACRO ingest_text(value) AS nullif(trim(value), '');
-- A symbol is taken as written, not trimmed: ' BTC' is not BTC but a value to quarantine
-- (ingest_symbol_problem), as is one with a control character ('\x07BTC', 'BT\nC'). A
-- value that is blank throughout is missing (NULL). Both roads (staged and streamed) use
-- these, and so does the check of a constant --symbol (rlv2.ingest.symbol_problem).
CREATE OR REPLACE TEMP MACRO ingest_symbol(value) AS
    CASE WHEN ingest_text(value) IS NOT NULL THEN value END;
-- What is wrong with a symbol, quoted as JSON so that the character shows; NULL: nothing.
-- Blanks are Unicode spaces and ASCII whitespace (trim() alone misses a tab).
CREATE OR REPLACE TEMP MACRO ingest_symbol_problem(value) AS
    CASE
        WHEN regexp_matches(value, '\p{Cc}')
            THEN format('symbol {} contains a control character', to_json(value))
        WHEN regexp_matches(value, '^[\s\p{Z}]|[\s\p{Z}]$')
            THEN format('symbol {} has blanks around it', to_json(value))
    END;
CREATE OR REPLACE TEMP MACRO ingest_is_symbol(value) AS
    value IS NOT NULL AND ingest_symbol_problem(value) IS NULL;
CREATE OR REPLACE TEMP MACRO ingest_double(value) AS
    coalesce(TRY_CAST(value AS DOUBLE), TRY_CAST(trim(value) AS DOUBLE));
-- A plain cast would round '2.5' to 3; only integral spellings ('7', '+1', '7.0') parse.
CREATE OR REPLACE TEMP MACRO ingest_integer(value) AS
    CASE WHEN regexp_full_match(trim(value), '[+-]?[0-9]+(\.0*)?')
        THEN TRY_CAST(trim(value) AS BIGINT) END;
-- fmt NULL reads ISO 8601 in UTC: a value with an offset ('+02:00', '-05') or a zone name
-- ('Europe/Paris') is converted to UTC, and a value without one is read as UTC; otherwise
-- fmt is a strptime format such as '%m/%d/%Y', applied to the trimmed value. Three routes:
--   * no '+' and no '-' from the 9th character on (past a date's two dashes; leading
--     blanks only send a value to the ICU casts): the plain TIMESTAMP cast, which is exact for such a
--     value (it accepts only 'Z' and 'UTC' as zones, and both mean UTC) and much cheaper
--     than the ICU cast. It ignores an offset, hence the test; a value it cannot read
--     (a zone name) goes on to the ICU casts;
--   * a value with a zone name (two letters in a row): the ICU cast to TIMESTAMPTZ, read
--     back in the connection's zone, UTC (rlv2.store.connect);
--   * any other value (an offset): the ICU cast, taken as microseconds since the epoch.
-- The zone names get a cast of their own because DuckDB 1.5's ICU cast keeps the zone of a
-- named value for the values after it in the same vector: '2020-01-01 America/New_York'
-- followed by '2020-01-02 00:00' in one cast read the second as New York time.
CREATE OR REPLACE TEMP MACRO ingest_timestamp(value, fmt) AS
    CASE WHEN fmt IS NULL
        THEN coalesce(
            CASE WHEN NOT contains(value, '+') AND NOT contains(value[9:], '-')
                THEN TRY_CAST(value AS TIMESTAMP) END,
            CASE WHEN regexp_matches(value, '[A-Za-z]{2}')
                THEN CAST(TRY_CAST(trim(value) AS TIMESTAMPTZ) AS TIMESTAMP)
                ELSE make_timestamp(epoch_us(TRY_CAST(trim(value) AS TIMESTAMPTZ)))
            END
        )
        ELSE try_strptime(trim(value), fmt) END;
CREATE OR REPLACE TEMP MACRO ingest_boolean(value) AS TRY_CAST(trim(value) AS BOOLEAN);
-- Enum values are matched case-insensitively: 'xgb' is XGB.
CREATE OR REPLACE TEMP MACRO ingest_label(value) AS upper(trim(value));
-- The contract's rules on one value (schema.sql), shared by ingest_rules_*.sql, which
-- name the values that break them, and ingest_checked_*.sql, which pass the rows that keep
-- them all. NULL (a missing or unparsed value) breaks no rule here.
CREATE OR REPLACE TEMP MACRO ingest_is_price(value) AS isfinite(value) AND value > 0;
CREATE OR REPLACE TEMP MACRO ingest_is_nonnegative(value) AS isfinite(value) AND value >= 0;
CREATE OR REPLACE TEMP MACRO ingest_is_sign(value) AS value IN (-1, 1);
CREATE OR REPLACE TEMP MACRO ingest_is_unit_interval(value) AS
    isfinite(value) AND value BETWEEN 0 AND 1;
CREATE OR REPLACE TEMP MACRO ingest_is_size_multiplier(value) AS
    value IN (0.2, 0.4, 0.6, 0.8, 1.0, 1.3, 1.6, 1.8);
CREATE OR REPLACE TEMP MACRO ingest_is_leverage(value) AS value BETWEEN 1 AND 7;
CREATE OR REPLACE TEMP MACRO ingest_is_action_prob(value) AS
    isfinite(value) AND value > 0 AND value <= 1;
CREATE OR REPLACE TEMP MACRO ingest_is_pnl_pct(value) AS isfinite(value) AND value >= -100;
CREATE OR REPLACE TEMP MACRO ingest_is_drawdown_pct(value) AS
    isfinite(value) AND value BETWEEN 0 AND 100;
-- Whether a typed value was given: parsed, or blank in the source (NULL is allowed there).
-- The blank test runs only for a value that did not parse.
CREATE OR REPLACE TEMP MACRO ingest_given_or_blank(typed, text) AS
    CASE WHEN typed IS NOT NULL THEN true ELSE ingest_text(text) IS NULL END;
-- Whether two doubles are the same value as ingest_triage.sql compares rows (as JSON
-- text): equal, both NULL, and with the same sign (JSON tells -0.0 from 0.0, = does not).
CREATE OR REPLACE TEMP MACRO ingest_same_double(a, b) AS
    a IS NOT DISTINCT FROM b AND signbit(a) IS NOT DISTINCT FROM signbit(b);
DROP TABLE IF EXISTS ingest_reject_errors;
DROP TABLE IF EXISTS ingest_reject_scans;
CREATE OR REPLACE TEMP TABLE ingest_rejected (
    source_row BIGINT,
    column_name VARCHAR,
    reason VARCHAR,
    raw_line VARCHAR
);
