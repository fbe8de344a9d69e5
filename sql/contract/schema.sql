-- The data contract of rlv2: the trading system's history as rlv2 reads it.
--
-- Applying this file is idempotent (every statement is CREATE ... IF NOT EXISTS), so
-- `rlv2 ingest` applies it before every load, then schema_upgrade.sql, which adds the
-- columns a database made by an earlier contract lacks. Conventions for every table:
--   * Timestamps are TIMESTAMP (no time zone) in UTC. Ingestion converts a source value
--     that carries an offset to UTC and reads a value without one as UTC.
--   * Prices are DOUBLE, finite and > 0. NaN and infinity never pass a CHECK: DuckDB
--     orders NaN above every number, so each bound is paired with isfinite().
--   * pnl_pct and max_drawdown_pct are percent of the margin put up (a +2.5 % trade
--     gives 2.5; SPEC C); a loss is capped at the whole margin (-100) by liquidation.
--   * The ENUM types list their values in the code order of rlv2.domain, so
--     enum_code(column) equals the IntEnum value (Regime, Model, WeightAction).
--   * Identifiers (signal_id, trade_id) are text: any non-empty string without surrounding
--     blanks, as the trading system writes it (a UUID, '42', 'T-0001'). An integer id
--     loads as its text. Where an order of ids matters (ties in rlv2's replay), it is the
--     order of the text, byte by byte ('10' < '9'). A database made when ids were BIGINT
--     is converted by rlv2.store.apply_schema (schema_ids_to_text.sql), which every
--     `rlv2 ingest` runs.
--   * Ingest the tables in the order candles, signals, trades, positions, policy: a trade
--     needs its signal stored first, a position its trade. account (optional) stands alone.

-- Market regime, and the meta agent's strategy family named after it (rlv2.domain.Regime).
CREATE TYPE IF NOT EXISTS regime_enum AS ENUM ('TREND', 'RANGE', 'BREAKOUT', 'MEAN_REVERSION');

-- Forecasting model that emitted a signal (rlv2.domain.Model).
CREATE TYPE IF NOT EXISTS model_enum AS ENUM ('XGB', 'LGBM', 'NHITS', 'PATCHTST');

-- Weight adjustment chosen by the meta agent (rlv2.domain.WeightAction).
CREATE TYPE IF NOT EXISTS weight_action_enum AS ENUM ('WEIGHT_UP', 'WEIGHT_DOWN', 'WEIGHT_HOLD');

-- candles: price bars of any interval, one row per (symbol, bar): (symbol, ts) is unique.
-- `rlv2 ingest` keeps it so (a repeated row is skipped, a key given other values is
-- quarantined); there is no PRIMARY KEY index, because DuckDB maintains one row by row and
-- that alone made a bulk load of bars about four times slower (bench stage 5).
CREATE TABLE IF NOT EXISTS candles (
    -- Instrument, as the trading system names it (e.g. 'BTCUSDT'); no blanks around it
    -- (spaces, tabs, Unicode spaces) and no control character ('\x07BTC', 'BT\nC'), in every
    -- table: a database made before this rule has only the blanks' CHECK, and the ingest
    -- holds every row to the whole rule either way (ingest_symbol_problem).
    symbol VARCHAR NOT NULL
        CHECK (symbol <> '' AND NOT regexp_matches(symbol, '\p{Cc}|^[\s\p{Z}]|[\s\p{Z}]$')),
    -- Time stamp of the bar, UTC. rlv2 treats a bar as known at decision time t when
    -- ts <= t (no look-ahead), so stamp bars by their close time. Sources that label bars
    -- by their opening time (both bundled files) can be loaded as published as long as
    -- the signals use the same labels, each label standing for that bar's close: the
    -- demo history does exactly that.
    ts TIMESTAMP NOT NULL,
    -- Open, high, low and close price of the bar.
    open DOUBLE NOT NULL CHECK (isfinite(open) AND open > 0),
    high DOUBLE NOT NULL CHECK (isfinite(high) AND high > 0),
    low DOUBLE NOT NULL CHECK (isfinite(low) AND low > 0),
    close DOUBLE NOT NULL CHECK (isfinite(close) AND close > 0),
    -- Traded volume in the source's unit; NULL where the source publishes none.
    volume DOUBLE CHECK (isfinite(volume) AND volume >= 0),
    -- The high and the low bound the bar: low <= open, close <= high.
    CHECK (high >= low AND high >= open AND high >= close AND low <= open AND low <= close)
);

-- signals: one row per model forecast; the rows of one (symbol, ts) are one decision
-- point (the `signal.generated` event of SPEC A5), with at most one forecast per model.
CREATE TABLE IF NOT EXISTS signals (
    -- Identifier of the forecast, unique over all signals.
    signal_id VARCHAR PRIMARY KEY CHECK (signal_id <> '' AND signal_id = trim(signal_id)),
    -- Time the signal was generated, UTC.
    ts TIMESTAMP NOT NULL,
    -- Instrument the forecast is for.
    symbol VARCHAR NOT NULL
        CHECK (symbol <> '' AND NOT regexp_matches(symbol, '\p{Cc}|^[\s\p{Z}]|[\s\p{Z}]$')),
    -- Model that emitted the forecast.
    model model_enum NOT NULL,
    -- Forecast direction: +1 long, -1 short.
    direction TINYINT NOT NULL CHECK (direction IN (-1, 1)),
    -- The model's confidence in its forecast, in [0, 1].
    confidence DOUBLE NOT NULL CHECK (isfinite(confidence) AND confidence BETWEEN 0 AND 1),
    -- Regime the model predicts for the holding period.
    predicted_regime regime_enum NOT NULL,
    UNIQUE (symbol, ts, model)
);

-- trades: the executed trade (the `trade.executed` event), the signal it followed, and the
-- actions the system took: the meta action (strategy, the signal's model, weight_action)
-- and the sizing action (size_multiplier, leverage). One trade per signal.
CREATE TABLE IF NOT EXISTS trades (
    -- Identifier of the trade, unique over all trades.
    trade_id VARCHAR PRIMARY KEY CHECK (trade_id <> '' AND trade_id = trim(trade_id)),
    -- The forecast the trade followed; its model is the model the meta action chose.
    -- Ingestion also requires the same symbol and ts >= the signal's ts.
    signal_id VARCHAR NOT NULL UNIQUE REFERENCES signals (signal_id),
    -- Execution (entry) time, UTC.
    ts TIMESTAMP NOT NULL,
    -- Instrument traded.
    symbol VARCHAR NOT NULL
        CHECK (symbol <> '' AND NOT regexp_matches(symbol, '\p{Cc}|^[\s\p{Z}]|[\s\p{Z}]$')),
    -- Position side: +1 long, -1 short.
    side TINYINT NOT NULL CHECK (side IN (-1, 1)),
    -- Entry price.
    entry_price DOUBLE NOT NULL CHECK (isfinite(entry_price) AND entry_price > 0),
    -- Size multiplier chosen by the sizing agent: one of rlv2.domain.SIZE_MULTIPLIERS.
    size_multiplier DOUBLE NOT NULL
        CHECK (size_multiplier IN (0.2, 0.4, 0.6, 0.8, 1.0, 1.3, 1.6, 1.8)),
    -- Leverage chosen by the sizing agent: one of rlv2.domain.LEVERAGES.
    leverage TINYINT NOT NULL CHECK (leverage BETWEEN 1 AND 7),
    -- Open notional x leverage over equity, at entry (SPEC C); 0.5 is 50 %.
    portfolio_exposure DOUBLE NOT NULL
        CHECK (isfinite(portfolio_exposure) AND portfolio_exposure >= 0),
    -- Strategy chosen by the meta agent (named after its regime, rlv2.domain.Strategy).
    strategy regime_enum NOT NULL,
    -- Weight adjustment chosen by the meta agent.
    weight_action weight_action_enum NOT NULL,
    -- The behaviour policy's probability of the action taken, in (0, 1]: an action that
    -- was taken had a positive probability. NULL where the system did not record it.
    action_prob DOUBLE CHECK (isfinite(action_prob) AND action_prob > 0 AND action_prob <= 1),
    -- Each agent's own propensity (SPEC C): the behaviour policy's probability of the meta
    -- action taken (strategy, model, weight action) in the meta state, and of the sizing
    -- action taken (size, leverage) in the sizing state, each in (0, 1]; NULL where the
    -- system did not record it. The joint action_prob cannot be split into these; they
    -- are what an off-policy estimate of one agent needs (rlv2.off_policy). A database
    -- made before these columns gets them, without their CHECKs, from
    -- schema_upgrade.sql; the ingest applies the same rules either way.
    meta_action_prob DOUBLE
        CHECK (isfinite(meta_action_prob) AND meta_action_prob > 0 AND meta_action_prob <= 1),
    sizing_action_prob DOUBLE
        CHECK (isfinite(sizing_action_prob) AND sizing_action_prob > 0 AND sizing_action_prob <= 1)
);

-- positions: the close of each trade (the `position.closed` event), at most one per trade.
-- Ingestion also requires closed_ts >= the trade's ts.
CREATE TABLE IF NOT EXISTS positions (
    -- The trade this closes.
    trade_id VARCHAR PRIMARY KEY REFERENCES trades (trade_id),
    -- Time the position was closed, UTC.
    closed_ts TIMESTAMP NOT NULL,
    -- Exit price.
    exit_price DOUBLE NOT NULL CHECK (isfinite(exit_price) AND exit_price > 0),
    -- Realised profit or loss, percent of margin; -100 is the whole margin lost.
    pnl_pct DOUBLE NOT NULL CHECK (isfinite(pnl_pct) AND pnl_pct >= -100),
    -- Largest adverse excursion while open, percent of margin, as a positive number.
    max_drawdown_pct DOUBLE NOT NULL
        CHECK (isfinite(max_drawdown_pct) AND max_drawdown_pct BETWEEN 0 AND 100)
);

-- policy: the history of the RL switch; the flag in force at time t is the one of the
-- latest row with ts <= t, and RL is on before the first row (or with no rows at all)
-- (SPEC C: the replay skips events that happened while it was off).
CREATE TABLE IF NOT EXISTS policy (
    -- Time the flag was set, UTC.
    ts TIMESTAMP PRIMARY KEY,
    -- Whether the RL agents acted from then on.
    enable_rl BOOLEAN NOT NULL
);

-- account: the live system's own equity, when it records it (optional: a database with no
-- rows here, or without this table, uses rlv2's account model, SPEC C). The equity in
-- force at time t is that of the latest row with ts <= t, after every event at or before
-- it; rlv2 reads it at each close (as of the close's time) for the account features
-- (account health, equity-curve slope) and at a window's start for the simulated
-- holdout's starting account (sql/features/account_equity_at.sql). Any currency: rlv2
-- uses ratios only, in units of the first recorded equity (= 100).
CREATE TABLE IF NOT EXISTS account (
    -- Time the equity was recorded, UTC.
    ts TIMESTAMP PRIMARY KEY,
    -- The account's equity then (balance with realised pnl, in the system's currency),
    -- finite and > 0.
    equity DOUBLE NOT NULL CHECK (isfinite(equity) AND equity > 0)
);

-- Numbers the ingests.
CREATE SEQUENCE IF NOT EXISTS ingest_id_seq START 1;

-- ingest_log: one row per committed `rlv2 ingest`; a failed ingest leaves no row (and no
-- other change). Every source row is counted once: read = loaded + duplicate + quarantined.
CREATE TABLE IF NOT EXISTS ingest_log (
    -- Identifier of the ingest, from ingest_id_seq.
    ingest_id BIGINT PRIMARY KEY,
    -- The source as given: a file path, or DSN#table with any password removed.
    source VARCHAR NOT NULL,
    -- How the source was read.
    source_format VARCHAR NOT NULL
        CHECK (source_format IN ('csv', 'parquet', 'duckdb', 'postgres')),
    -- The contract table loaded.
    target_table VARCHAR NOT NULL
        CHECK (
            target_table IN ('candles', 'signals', 'trades', 'positions', 'policy', 'account')
        ),
    -- Content fingerprint: sha256 of a file's bytes (what `sha256sum FILE` prints); for a
    -- table source, of its rows as staged (one JSON object a line, in source order).
    content_sha256 VARCHAR NOT NULL CHECK (regexp_full_match(content_sha256, '[0-9a-f]{64}')),
    -- The options of the ingest: column map, constant symbol, timestamp format, ...
    options JSON NOT NULL,
    -- Data rows read from the source (a CSV header is not a data row).
    rows_read BIGINT NOT NULL CHECK (rows_read >= 0),
    -- Rows inserted into target_table.
    rows_loaded BIGINT NOT NULL CHECK (rows_loaded >= 0),
    -- Rows identical to a row already stored or to an earlier row of the same source.
    rows_duplicate BIGINT NOT NULL CHECK (rows_duplicate >= 0),
    -- Rows sent to quarantine (one or more quarantine rows each).
    rows_quarantined BIGINT NOT NULL CHECK (rows_quarantined >= 0),
    -- Wall-clock start and end of the ingest, UTC.
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP NOT NULL,
    CHECK (rows_read = rows_loaded + rows_duplicate + rows_quarantined),
    CHECK (finished_at >= started_at)
);

-- ingest_lock: one row per contract table, written by every ingest into it inside its
-- transaction, so that two ingests into one table at once conflict and the second fails
-- and changes nothing. candles has no key index to refuse the rows two overlapping ingests
-- would both append; DuckDB lets one process at a time write a file, and this covers two
-- connections of one process.
CREATE TABLE IF NOT EXISTS ingest_lock (
    -- The contract table.
    target_table VARCHAR PRIMARY KEY,
    -- The ingest that last wrote to it.
    ingest_id BIGINT NOT NULL
);

-- quarantine: every problem of every source row that broke the contract, one row per
-- (source row, problem); the row itself was not loaded. Valid rows of the same source were.
CREATE TABLE IF NOT EXISTS quarantine (
    -- The ingest that read the row.
    ingest_id BIGINT NOT NULL REFERENCES ingest_log (ingest_id),
    -- The source, as in ingest_log.source.
    source_file VARCHAR NOT NULL,
    -- 1-based number of the data row in the source; the header line is not counted, so
    -- in a CSV without blank lines or quoted line breaks the file line is source_row + 1.
    -- For a table source: the position in the order the source returned its rows.
    source_row BIGINT NOT NULL CHECK (source_row >= 1),
    -- The contract table the row was meant for.
    target_table VARCHAR NOT NULL,
    -- The contract column at fault (the key columns for a key conflict); NULL when the
    -- record could not be split into columns.
    column_name VARCHAR,
    -- What is wrong, with the offending value.
    reason VARCHAR NOT NULL,
    -- The source row as read, column names as in the source (a malformed CSV record: its
    -- text, under "line").
    raw_record JSON NOT NULL,
    -- Start of the ingest, UTC.
    ingested_at TIMESTAMP NOT NULL
);
