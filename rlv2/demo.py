"""The demo history in a DuckDB file: bundled real bars in, a synthetic trading history out.

Both go through ``rlv2.ingest`` like any user's data (validated, counted, idempotent);
``rlv2.demo_data`` says what is synthetic and what is real. A planted-signal history
(``rlv2.planted``: a known edge, for measuring what training finds) goes in the same way.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, TypeVar

import duckdb
import pandas as pd

from rlv2 import store
from rlv2.demo_data import DATA_DIR, DemoConfig, DemoHistory, build_history
from rlv2.ingest import IngestReport, IngestRequest, ingest
from rlv2.planted import PlantedConfig, PlantedHistory, build_planted_history

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
    reports, _ = _write_history(
        db_path, lambda candles: build_history(candles, config or DemoConfig())
    )
    return reports


class PlantedDatabase(NamedTuple):
    """What ``build_planted_database`` wrote: the ingest reports and the history itself."""

    reports: list[IngestReport]
    """One per table loaded (the bundled candles first, if they were loaded)."""
    history: PlantedHistory
    """The generated history, with what was planted (``truth``) and the behaviour."""


def build_planted_database(
    db_path: str | Path, config: PlantedConfig | None = None
) -> PlantedDatabase:
    """Fill ``db_path`` with a planted-signal history; load the bundled bars if it has no
    candles.

    One history per database: running it again with the same configuration loads
    nothing twice; another configuration's rows would conflict on their ids. The trades
    carry the per-agent propensities ``meta_action_prob`` and ``sizing_action_prob``.
    """
    reports, history = _write_history(
        db_path, lambda candles: build_planted_history(candles, config or PlantedConfig())
    )
    return PlantedDatabase(reports, history)


History = TypeVar("History", DemoHistory, PlantedHistory)


def _write_history(
    db_path: str | Path, build: Callable[[pd.DataFrame], History]
) -> tuple[list[IngestReport], History]:
    """Build a history on the database's candles (the bundled bars if it has none) and
    ingest its tables."""
    reports: list[IngestReport] = []
    with store.connect(db_path) as con:
        store.apply_schema(con)
        candles = load_candles(con)
        if candles.empty:
            for request in BUNDLED_CANDLES:
                reports.append(ingest(con, request))
            candles = load_candles(con)
        history = build(candles)
        with tempfile.TemporaryDirectory(prefix="rlv2-demo-") as tmp:
            for table in HISTORY_TABLES:
                path = Path(tmp) / f"{table}.parquet"
                getattr(history, table).to_parquet(path, index=False)
                reports.append(ingest(con, IngestRequest(source=str(path), table=table)))
    return reports, history
