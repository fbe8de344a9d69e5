-- The positions rules beyond the column types (schema.sql): a finite positive exit
-- price, pnl_pct >= -100 and max_drawdown_pct in [0, 100] (percent of margin, SPEC C),
-- and the trade closed: stored (ingest trades first) and not opened after the close.
CREATE OR REPLACE TEMP TABLE ingest_rule_hits AS
SELECT source_row, 'exit_price' AS column_name,
    format('price must be finite and > 0, got {}', exit_price) AS reason
FROM ingest_typed
WHERE NOT ingest_is_price(exit_price)
UNION ALL
SELECT source_row, 'pnl_pct',
    format('pnl_pct must be finite and >= -100 (percent of margin), got {}', pnl_pct)
FROM ingest_typed
WHERE NOT ingest_is_pnl_pct(pnl_pct)
UNION ALL
SELECT source_row, 'max_drawdown_pct',
    format('max_drawdown_pct must be in [0, 100] (percent of margin), got {}', max_drawdown_pct)
FROM ingest_typed
WHERE NOT ingest_is_drawdown_pct(max_drawdown_pct)
UNION ALL
SELECT source_row, 'trade_id',
    format('no trade with trade_id {} is stored (ingest trades first)', trade_id)
FROM ingest_typed
WHERE trade_id IS NOT NULL AND trade_id NOT IN (SELECT trade_id FROM trades)
UNION ALL
SELECT typed.source_row, 'closed_ts',
    format('closed at {} before its trade opened at {}', typed.closed_ts, trade.ts)
FROM ingest_typed AS typed
JOIN trades AS trade USING (trade_id)
WHERE typed.closed_ts < trade.ts;
