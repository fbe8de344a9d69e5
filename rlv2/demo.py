"""The demo history in a DuckDB file: bundled real bars in, a synthetic trading history out.

Both go through ``rlv2.ingest`` like any user's data (validated, counted, idempotent);
``rlv2.demo_data`` says what is synthetic and what is real.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import duckdb
import pandas as pd

from rlv2 import store
from rlv2.demo_data import DATA_DIR, DemoConfig, build_history
from rlv2.ingest import IngestReport, IngestRequest, ingest

BUNDLED_CANDLES = (
    IngestRequest(
        source=str(DATA_DIR / "eurusd_1h.csv"),
        table="candles",
        column_map={"ts": "column0"},
        symbol="EURUSD",
    ),
    IngestRequest(
        source=str(DATA_DIR / "sp500_1d.csv"),
        table="candles",
        column_map={"ts": "Date"},
        symbol="SPX",
        ts_format="%m/%d/%Y",
    ),
)
"""How the two bundled price files load, as published (``rlv2 ingest`` options)."""

HISTORY_TABLES = ("signals", "trades", "positions", "policy")


def load_candles(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every candle in the database as a DataFrame."""
    return store.execute(con, "candles_all").df()


def build_demo_database(
    db_path: str | Path, config: DemoConfig | None = None
) -> list[IngestReport]:
    """Fill ``db_path`` with the demo history; load the bundled bars if it has no candles.

    Returns the ingest reports, one per table loaded. Running it again loads nothing twice.
    """
    reports: list[IngestReport] = []
    with store.connect(db_path) as con:
        store.apply_schema(con)
        candles = load_candles(con)
        if candles.empty:
            for request in BUNDLED_CANDLES:
                reports.append(ingest(con, request))
            candles = load_candles(con)
        history = build_history(candles, config or DemoConfig())
        with tempfile.TemporaryDirectory(prefix="rlv2-demo-") as tmp:
            for table in HISTORY_TABLES:
                path = Path(tmp) / f"{table}.parquet"
                getattr(history, table).to_parquet(path, index=False)
                reports.append(ingest(con, IngestRequest(source=str(path), table=table)))
    return reports
