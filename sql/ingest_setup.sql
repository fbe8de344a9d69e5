-- Prepares a connection for one ingest: the parsing macros the ingest_typed_* queries use,
-- an empty ingest_rejected, and no leftovers of an earlier ingest on this connection.
-- Every value arrives as VARCHAR; a parser returns NULL for a value it cannot read, and
-- ingest_unparsed.sql reports it.
CREATE OR REPLACE TEMP MACRO ingest_text(value) AS nullif(trim(value), '');
CREATE OR REPLACE TEMP MACRO ingest_double(value) AS TRY_CAST(trim(value) AS DOUBLE);
-- A plain cast would round '2.5' to 3; only integral spellings ('7', '+1', '7.0') parse.
CREATE OR REPLACE TEMP MACRO ingest_integer(value) AS
    CASE WHEN regexp_full_match(trim(value), '[+-]?[0-9]+(\.0*)?')
        THEN TRY_CAST(trim(value) AS BIGINT) END;
-- Parsed through TIMESTAMPTZ so that an offset ('+02:00', 'Z') is converted to UTC (the
-- connection's TimeZone is UTC) instead of being dropped; no offset means UTC.
-- fmt NULL reads ISO 8601; otherwise fmt is a strptime format such as '%m/%d/%Y'.
CREATE OR REPLACE TEMP MACRO ingest_timestamp(value, fmt) AS
    CAST(CASE WHEN fmt IS NULL THEN TRY_CAST(trim(value) AS TIMESTAMPTZ)
        ELSE try_strptime(trim(value), fmt) END AS TIMESTAMP);
CREATE OR REPLACE TEMP MACRO ingest_boolean(value) AS TRY_CAST(trim(value) AS BOOLEAN);
-- Enum values are matched case-insensitively: 'xgb' is XGB.
CREATE OR REPLACE TEMP MACRO ingest_label(value) AS upper(trim(value));
DROP TABLE IF EXISTS ingest_reject_errors;
DROP TABLE IF EXISTS ingest_reject_scans;
CREATE OR REPLACE TEMP TABLE ingest_rejected (
    source_row BIGINT,
    column_name VARCHAR,
    reason VARCHAR,
    raw_line VARCHAR
);
