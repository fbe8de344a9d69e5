-- Types the staged trades rows (ingest_raw, all VARCHAR) into the contract's types, and
-- looks up the stored trade with the same trade_id (see ingest_typed_candles.sql).
-- Parameter: $ts_format (strptime format of ts, or NULL for ISO 8601).
CREATE OR REPLACE TEMP TABLE ingest_typed AS
WITH typed AS (
    SELECT
        source_row,
        {
            'trade_id': ingest_text(trade_id),
            'signal_id': ingest_text(signal_id),
            'ts': ingest_timestamp(ts, $ts_format),
            'symbol': ingest_symbol(symbol),
            'side': ingest_integer(side),
            'entry_price': ingest_double(entry_price),
            'size_multiplier': ingest_double(size_multiplier),
            'leverage': ingest_integer(leverage),
            'portfolio_exposure': ingest_double(portfolio_exposure),
            'strategy': TRY_CAST(ingest_label(strategy) AS regime_enum),
            'weight_action': TRY_CAST(ingest_label(weight_action) AS weight_action_enum),
            'action_prob': ingest_double(action_prob),
            'meta_action_prob': ingest_double(meta_action_prob),
            'sizing_action_prob': ingest_double(sizing_action_prob)
        } AS row
    FROM ingest_raw
)
SELECT
    typed.source_row,
    unnest(typed.row),
    to_json({'trade_id': typed.row.trade_id}) AS row_key,
    to_json(typed.row) AS row_content,
    CASE WHEN stored.trade_id IS NOT NULL THEN to_json(stored) END AS stored_content
FROM typed
LEFT JOIN trades AS stored ON stored.trade_id = typed.row.trade_id;
