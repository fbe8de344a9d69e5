-- The trades rules beyond the column types (schema.sql): the action values of SPEC A3,
-- a finite positive entry price, a non-negative exposure, action probabilities (joint and
-- per agent) in (0, 1], and the signal followed: stored (ingest signals first), for the same symbol, not after
-- the trade, and followed by no other trade.
CREATE OR REPLACE TEMP TABLE ingest_rule_hits AS
SELECT source_row, 'side' AS column_name, format('side must be -1 or +1, got {}', side) AS reason
FROM ingest_typed
WHERE NOT ingest_is_sign(side)
UNION ALL
SELECT source_row, 'entry_price', format('price must be finite and > 0, got {}', entry_price)
FROM ingest_typed
WHERE NOT ingest_is_price(entry_price)
UNION ALL
SELECT source_row, 'size_multiplier', format(
    'size_multiplier must be one of 0.2, 0.4, 0.6, 0.8, 1.0, 1.3, 1.6, 1.8, got {}', size_multiplier
)
FROM ingest_typed
WHERE NOT ingest_is_size_multiplier(size_multiplier)
UNION ALL
SELECT source_row, 'leverage', format('leverage must be an integer from 1 to 7, got {}', leverage)
FROM ingest_typed
WHERE NOT ingest_is_leverage(leverage)
UNION ALL
SELECT source_row, 'portfolio_exposure',
    format('portfolio_exposure must be finite and >= 0, got {}', portfolio_exposure)
FROM ingest_typed
WHERE NOT ingest_is_nonnegative(portfolio_exposure)
UNION ALL
SELECT source_row, 'action_prob', format('action_prob must be in (0, 1], got {}', action_prob)
FROM ingest_typed
WHERE NOT ingest_is_action_prob(action_prob)
UNION ALL
SELECT source_row, 'meta_action_prob',
    format('meta_action_prob must be in (0, 1], got {}', meta_action_prob)
FROM ingest_typed
WHERE NOT ingest_is_action_prob(meta_action_prob)
UNION ALL
SELECT source_row, 'sizing_action_prob',
    format('sizing_action_prob must be in (0, 1], got {}', sizing_action_prob)
FROM ingest_typed
WHERE NOT ingest_is_action_prob(sizing_action_prob)
UNION ALL
SELECT source_row, 'signal_id',
    format('no signal with signal_id {} is stored (ingest signals first)', signal_id)
FROM ingest_typed
WHERE signal_id IS NOT NULL AND signal_id NOT IN (SELECT signal_id FROM signals)
UNION ALL
SELECT typed.source_row, 'symbol',
    format('symbol {} differs from its signal''s symbol {}', typed.symbol, signal.symbol)
FROM ingest_typed AS typed
JOIN signals AS signal USING (signal_id)
WHERE typed.symbol <> signal.symbol
UNION ALL
SELECT typed.source_row, 'ts',
    format('trade at {} precedes its signal at {}', typed.ts, signal.ts)
FROM ingest_typed AS typed
JOIN signals AS signal USING (signal_id)
WHERE typed.ts < signal.ts
UNION ALL
SELECT typed.source_row, 'signal_id',
    format('signal {} is already followed by stored trade {}', typed.signal_id, stored.trade_id)
FROM ingest_typed AS typed
JOIN trades AS stored USING (signal_id)
WHERE stored.trade_id <> typed.trade_id
UNION ALL
SELECT typed.source_row, 'signal_id',
    format('rows {} give signal {} different trade_ids', clash.source_rows, typed.signal_id)
FROM ingest_typed AS typed
JOIN (
    SELECT signal_id, string_agg(source_row::VARCHAR, ', ' ORDER BY source_row) AS source_rows
    FROM ingest_typed
    WHERE trade_id IS NOT NULL
    GROUP BY signal_id
    HAVING count(DISTINCT trade_id) > 1
) AS clash USING (signal_id)
UNION ALL
SELECT source_row, 'symbol', ingest_symbol_problem(symbol)
FROM ingest_typed
WHERE ingest_symbol_problem(symbol) IS NOT NULL;
