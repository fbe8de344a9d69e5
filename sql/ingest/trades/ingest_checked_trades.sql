-- Types every staged trades row and gives the plainly fine ones their verdict (see
-- ingest_checked_candles.sql): the conditions of ingest_unparsed.sql and
-- ingest_rules_trades.sql, stated for a row that passes. A row that shares its signal_id
-- with another row of the source goes to ingest_triage.sql, as that rule compares rows
-- whatever else is wrong with them.
-- Parameter: $ts_format (strptime format of ts, or NULL for ISO 8601).
CREATE OR REPLACE TEMP TABLE ingest_checked AS
WITH
typed AS (
    SELECT
        source_row,
        ingest_text(trade_id) AS trade_id,
        ingest_text(signal_id) AS signal_id,
        ingest_timestamp(ts, $ts_format) AS ts,
        ingest_symbol(symbol) AS symbol,
        ingest_integer(side) AS side,
        ingest_double(entry_price) AS entry_price,
        ingest_double(size_multiplier) AS size_multiplier,
        ingest_integer(leverage) AS leverage,
        ingest_double(portfolio_exposure) AS portfolio_exposure,
        TRY_CAST(ingest_label(strategy) AS regime_enum) AS strategy,
        TRY_CAST(ingest_label(weight_action) AS weight_action_enum) AS weight_action,
        ingest_double(action_prob) AS action_prob,
        ingest_double(meta_action_prob) AS meta_action_prob,
        ingest_double(sizing_action_prob) AS sizing_action_prob,
        action_prob AS action_prob_text,
        meta_action_prob AS meta_action_prob_text,
        sizing_action_prob AS sizing_action_prob_text
    FROM ingest_mapped
),
counted AS (
    SELECT *, count(*) OVER (PARTITION BY signal_id) AS rows_on_signal
    FROM typed
)
SELECT
    typed.* EXCLUDE (
        action_prob_text, meta_action_prob_text, sizing_action_prob_text, rows_on_signal
    ),
    CASE
        WHEN typed.trade_id IS NOT NULL
            AND typed.signal_id IS NOT NULL
            AND typed.ts IS NOT NULL
            AND ingest_is_symbol(typed.symbol)
            AND ingest_is_sign(typed.side)
            AND ingest_is_price(typed.entry_price)
            AND ingest_is_size_multiplier(typed.size_multiplier)
            AND ingest_is_leverage(typed.leverage)
            AND ingest_is_nonnegative(typed.portfolio_exposure)
            AND typed.strategy IS NOT NULL
            AND typed.weight_action IS NOT NULL
            AND ingest_given_or_blank(typed.action_prob, typed.action_prob_text)
            AND (typed.action_prob IS NULL OR ingest_is_action_prob(typed.action_prob))
            AND ingest_given_or_blank(typed.meta_action_prob, typed.meta_action_prob_text)
            AND (
                typed.meta_action_prob IS NULL OR ingest_is_action_prob(typed.meta_action_prob)
            )
            AND ingest_given_or_blank(typed.sizing_action_prob, typed.sizing_action_prob_text)
            AND (
                typed.sizing_action_prob IS NULL
                OR ingest_is_action_prob(typed.sizing_action_prob)
            )
            AND signal.symbol = typed.symbol
            AND signal.ts <= typed.ts
            AND (follower.trade_id IS NULL OR follower.trade_id = typed.trade_id)
            AND typed.rows_on_signal = 1
        THEN CASE
            WHEN stored.trade_id IS NULL THEN 'load'
            WHEN stored.signal_id = typed.signal_id
                AND stored.ts = typed.ts
                AND stored.symbol = typed.symbol
                AND stored.side = typed.side
                AND ingest_same_double(stored.entry_price, typed.entry_price)
                AND ingest_same_double(stored.size_multiplier, typed.size_multiplier)
                AND stored.leverage = typed.leverage
                AND ingest_same_double(stored.portfolio_exposure, typed.portfolio_exposure)
                AND stored.strategy = typed.strategy
                AND stored.weight_action = typed.weight_action
                AND ingest_same_double(stored.action_prob, typed.action_prob)
                AND ingest_same_double(stored.meta_action_prob, typed.meta_action_prob)
                AND ingest_same_double(stored.sizing_action_prob, typed.sizing_action_prob)
                THEN 'duplicate'
        END
    END AS verdict
FROM counted AS typed
LEFT JOIN signals AS signal ON signal.signal_id = typed.signal_id
LEFT JOIN trades AS follower ON follower.signal_id = typed.signal_id
LEFT JOIN trades AS stored ON stored.trade_id = typed.trade_id;
