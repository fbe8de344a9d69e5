"""The edge to DuckDB for reading history: states, rewards' parts and transitions as arrays.

Runs the ``sql/features_*.sql`` files in order (bars → decisions → account → windows →
window features → transitions) inside the database and returns numpy arrays ready
for ``rlv2.replay`` and the kernels. Every window function runs in DuckDB; no Python
loop touches a row.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from numpy.typing import NDArray

from rlv2.outcomes import INITIAL_EQUITY, MARGIN_UNIT
from rlv2.replay import (
    SimulationInputs,
    counterfactual_paths,
    decision_order,
    path_windows,
    simulation_inputs,
    traded_mask,
)
from rlv2.states import PRESSURE_WINDOW, VOLATILITY_WINDOW, WINRATE_WINDOW, RegimeRule
from rlv2.store import sql_text

EARLIEST = datetime(1900, 1, 1)
LATEST = datetime(2200, 1, 1)

Arrays = dict[str, NDArray[Any]]


@dataclass(frozen=True)
class FeatureConfig:
    """Windows and rules of the feature SQL (SPEC A2, C); every field is configurable."""

    lookback_bars: int = VOLATILITY_WINDOW
    """Bars in a state window: volatility and the regime label (SPEC C default 20)."""
    pressure_bars: int = PRESSURE_WINDOW
    """Bars for market pressure, ``p[-1]`` against ``p[-pressure_bars]`` (default 5)."""
    winrate_window: int = WINRATE_WINDOW
    """Closed trades in the trailing win rate, Sharpe signal and equity slope (20)."""
    regime_rule: RegimeRule = field(default_factory=RegimeRule)
    """Thresholds of the regime rule (``rlv2.states.label_regime``)."""
    initial_equity: float = INITIAL_EQUITY
    """Equity before the first trade."""
    margin_unit: float = MARGIN_UNIT
    """Margin each position puts up, in equity units."""

    def __post_init__(self) -> None:
        if self.pressure_bars > self.lookback_bars:
            raise ValueError(
                f"pressure_bars={self.pressure_bars} must not exceed "
                f"lookback_bars={self.lookback_bars}"
            )
        for name in ("lookback_bars", "pressure_bars", "winrate_window"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")


def _unmask(values: Any) -> NDArray[Any]:
    """Turn a masked fetchnumpy column into a plain array: NULL is NaN, -1, False, NaT, None."""
    if not isinstance(values, np.ma.MaskedArray):
        return np.asarray(values)
    if not np.ma.is_masked(values):
        return np.asarray(values.data)
    kind = values.dtype.kind
    if kind == "O":
        out = np.asarray(values.data, dtype=object).copy()
        out[np.ma.getmaskarray(values)] = None
        return out
    if kind in "iu":
        return np.ma.filled(values.astype(np.int64), -1)
    if kind == "b":
        return values.filled(False)
    if kind in "mM":
        return values.filled(np.datetime64("NaT"))
    return np.ma.filled(values.astype(np.float64), np.nan)


def _fetch(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> Arrays:
    result = con.execute(sql, params).fetchnumpy()
    return {k: _unmask(v) for k, v in result.items()}


def _window_params(config: FeatureConfig) -> dict[str, Any]:
    rule = config.regime_rule
    return {
        "pressure_bars": config.pressure_bars,
        "breakout_k": rule.breakout_k,
        "trend_efficiency": rule.trend_efficiency,
        "reversion_z": rule.reversion_z,
    }


@contextmanager
def deterministic(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run the enclosed queries on one thread, so float aggregates are bit-reproducible.

    Parallel partial sums combine in a varying order and differ in the last bits; a
    state on a bin edge could then flip between reruns. One thread costs little here.
    """
    threads = con.execute(sql_text("threads_get")).fetchone()
    con.execute(sql_text("threads_set").format(threads=1))
    try:
        yield
    finally:
        restore = int(threads[0]) if threads else 1
        con.execute(sql_text("threads_set").format(threads=restore))


def prepare_bars(con: duckdb.DuckDBPyConnection) -> None:
    """Index every candle (``sql/features_bars.sql``) into the temp table ``bars``."""
    con.execute(sql_text("features_bars"))


def load_bars(con: duckdb.DuckDBPyConnection) -> Arrays:
    """The indexed bars as arrays (symbol, ts, idx, high, low, close, first/last idx)."""
    return _fetch(con, sql_text("bars_arrays"), {})


def load_transitions(
    con: duckdb.DuckDBPyConnection,
    start: datetime | None = None,
    end: datetime | None = None,
    config: FeatureConfig | None = None,
) -> Arrays:
    """One row per decision point in ``[start, end)`` with its states, reward parts and switch.

    Column arrays as in ``sql/features_transitions.sql``. NULLs (a decision without a
    trade, a trade still open) come back as NaN (floats), -1 (integers), False (flags),
    NaT (times) or None (text).
    """
    config = config or FeatureConfig()
    with deterministic(con):
        prepare_bars(con)
        con.execute(
            sql_text("features_decisions"), {"start": start or EARLIEST, "end": end or LATEST}
        )
        con.execute(
            sql_text("features_account"),
            {
                "initial_equity": config.initial_equity,
                "margin_unit": config.margin_unit,
                "window": config.winrate_window,
            },
        )
        con.execute(sql_text("features_window_list"), {"lookback": config.lookback_bars})
        con.execute(sql_text("features_windows"), _window_params(config))
        return _fetch(
            con,
            sql_text("features_transitions"),
            {"lookback": config.lookback_bars, "initial_equity": config.initial_equity},
        )


def window_features(
    con: duckdb.DuckDBPyConnection,
    lo_idx: NDArray[np.int64],
    hi_idx: NDArray[np.int64],
    config: FeatureConfig | None = None,
) -> Arrays:
    """Market features of arbitrary bar windows ``lo_idx..hi_idx`` (needs ``prepare_bars``).

    Returns arrays aligned with the input windows.
    """
    config = config or FeatureConfig()
    lo = np.asarray(lo_idx, dtype=np.int64)
    frame = pd.DataFrame(
        {"pos": np.arange(lo.size), "lo_idx": lo, "hi_idx": np.asarray(hi_idx, dtype=np.int64)}
    )
    con.register("requested_windows", frame)
    try:
        with deterministic(con):
            con.execute(sql_text("window_list_requested"))
            con.execute(sql_text("features_windows"), _window_params(config))
            out = _fetch(con, sql_text("window_features_lookup"), {})
    finally:
        con.unregister("requested_windows")
    return out


def decision_bounds(con: duckdb.DuckDBPyConnection) -> tuple[Any, Any, int]:
    """First and last decision time and the number of decision points in the history."""
    row = con.execute(sql_text("decision_bounds")).fetchone()
    if row is None or row[0] is None:
        return None, None, 0
    return row[0], row[1], int(row[2])


def holdout_start(
    con: duckdb.DuckDBPyConnection, holdout_fraction: float, end: datetime | None = None
) -> Any:
    """Decision time after which lie the last ``holdout_fraction`` of decisions before ``end``."""
    params = {"holdout_fraction": holdout_fraction, "end": end or LATEST}
    row = con.execute(sql_text("decision_split"), params).fetchone()
    return None if row is None else row[0]


@dataclass(frozen=True)
class WindowData:
    """Everything the replay needs about one time window, as arrays."""

    start: datetime | None
    end: datetime | None
    transitions: Arrays
    """Columns of ``sql/features_transitions.sql``, one row per decision point."""
    bars: Arrays
    inputs: SimulationInputs
    """Traded decisions (closed inside the window) with their counterfactual paths."""

    @property
    def n_trades(self) -> int:
        """Traded decisions the replay uses."""
        return len(self.inputs.rows)


def load_window(
    con: duckdb.DuckDBPyConnection,
    start: datetime | None = None,
    end: datetime | None = None,
    config: FeatureConfig | None = None,
) -> WindowData:
    """Load one window ``[start, end)``: transitions, bars, and counterfactual paths.

    Only trades closed before ``end`` are used, and no counterfactual path runs past
    the last bar before ``end``, so a training window never sees its holdout.
    """
    config = config or FeatureConfig()
    tr = load_transitions(con, start, end, config)
    bars = load_bars(con)
    rows = decision_order(tr, traded_mask(tr, end))
    paths = counterfactual_paths(tr, bars, rows, end)
    lo, hi = path_windows(tr, rows, paths, config.lookback_bars)
    windows = window_features(con, lo, hi, config)
    inputs = simulation_inputs(tr, bars, rows, paths, windows)
    return WindowData(start, end, tr, bars, inputs)
