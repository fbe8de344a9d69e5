"""The edge to DuckDB for reading history: states, rewards' parts and transitions as arrays.

DuckDB does the data work: it sorts the candles into bar arrays (``sql/bars_*.sql``),
pivots and joins signals, trades, closes and the RL switch into one row per decision
(``sql/features_decisions.sql``) and lists the closes in order
(``sql/account_closes.sql``). The arithmetic runs in compiled kernels: the bar known
at each time and the market features over price windows in ``rlv2.market``, the
account features after each close in ``rlv2.account``. No Python loop touches a row;
the result is numpy arrays ready for ``rlv2.replay``, the same on every rerun (the
kernels sum in a fixed order).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
from numpy.typing import NDArray

from rlv2.account import account_after_closes
from rlv2.domain import Model, Regime, WeightAction
from rlv2.market import asof_bars, simple_returns, window_market_features
from rlv2.outcomes import INITIAL_EQUITY, MARGIN_UNIT
from rlv2.replay import (
    SimulationInputs,
    counterfactual_paths,
    decision_order,
    every_model_signalled,
    path_windows,
    simulation_inputs,
    traded_mask,
)
from rlv2.states import (
    NEUTRAL_WINRATE,
    PRESSURE_WINDOW,
    VOLATILITY_WINDOW,
    WINRATE_WINDOW,
    RegimeRule,
)
from rlv2.store import sql_text

EARLIEST = datetime(1900, 1, 1)
LATEST = datetime(2200, 1, 1)

Arrays = dict[str, NDArray[Any]]


@dataclass(frozen=True)
class FeatureConfig:
    """Windows and rules of the feature SQL (SPEC A2, C); every field is configurable."""

    lookback_bars: int = VOLATILITY_WINDOW
    """Bars in a state window: volatility and the regime label (SPEC C)."""
    pressure_bars: int = PRESSURE_WINDOW
    """Bars for market pressure, ``p[-1]`` against ``p[-pressure_bars]`` (SPEC C)."""
    winrate_window: int = WINRATE_WINDOW
    """Closed trades in the trailing win rate, Sharpe signal and equity slope (SPEC A2)."""
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


def _fetch_dense(con: duckdb.DuckDBPyConnection, sql: str) -> Arrays:
    """Columns of a query without NULLs as arrays, through Arrow (half fetchnumpy's time)."""
    table = con.execute(sql).to_arrow_table().combine_chunks()
    return {name: table.column(name).to_numpy() for name in table.column_names}


def _names(enum: Any) -> NDArray[Any]:
    """Names of an IntEnum by code, then None: ``_names(E)[code]`` maps -1 (NULL) to None."""
    return np.asarray([e.name for e in sorted(enum, key=int)] + [None], dtype=object)


REGIME_NAMES = _names(Regime)
"""Regime names by code; index -1 (no label) gives None."""

_ENUM_COLUMNS = {
    **{f"regime_{m}": Regime for m in ("xgb", "lgbm", "nhits", "patchtst")},
    "trade_model": Model,
    "trade_predicted_regime": Regime,
    "strategy": Regime,
    "weight_action": WeightAction,
}
"""Columns features_decisions.sql returns as enum codes and load_transitions as names."""

_TRADE_COLUMNS = (
    "trade_id",
    "trade_model",
    "trade_confidence",
    "trade_predicted_regime",
    "strategy",
    "weight_action",
    "size_multiplier",
    "leverage",
    "portfolio_exposure",
    "action_prob",
    "side",
    "trade_ts",
    "closed_ts",
    "pnl_pct",
    "max_drawdown_pct",
)
"""The executed trade's columns, in the order load_transitions returns them."""


def load_bars(con: duckdb.DuckDBPyConnection) -> Arrays:
    """Every candle as price arrays in (symbol, ts) order, with each symbol's bar range.

    Bar ``i`` is row ``i`` of ``ts``, ``high``, ``low``, ``close``. ``symbols`` lists the
    symbols in code order and ``symbol_first`` / ``symbol_last`` their bar ranges, so no
    window or price path crosses into another symbol; ``ret`` is the simple return into
    each bar (meaningless on a symbol's first bar, never read).
    """
    per_symbol = _fetch(con, sql_text("bars_symbols"), {})
    out = _fetch_dense(con, sql_text("bars_arrays"))
    counts = per_symbol["n_bars"].astype(np.int64)
    if int(counts.sum()) != len(out["close"]):
        raise RuntimeError("the candles changed while their bars were loading; load again")
    symbol_last = np.cumsum(counts) - 1
    symbol_first = symbol_last - counts + 1
    out.update(
        symbols=per_symbol["symbol"].astype(object),
        symbol_first=symbol_first,
        symbol_last=symbol_last,
        ret=simple_returns(out["close"]),
    )
    return out


def window_features(
    bars: Arrays,
    lo_idx: NDArray[np.int64],
    hi_idx: NDArray[np.int64],
    config: FeatureConfig | None = None,
) -> Arrays:
    """Market features of bar windows ``lo_idx..hi_idx`` (inclusive), aligned with them.

    ``volatility``, ``market_pressure``, ``regime`` (name) and ``regime_code``, by
    ``rlv2.market.window_market_features`` over the closes of ``load_bars``.
    """
    config = config or FeatureConfig()
    volatility, pressure, regime = window_market_features(
        bars["close"], lo_idx, hi_idx, config.pressure_bars, config.regime_rule, bars.get("ret")
    )
    return {
        "lo_idx": np.asarray(lo_idx, dtype=np.int64),
        "hi_idx": np.asarray(hi_idx, dtype=np.int64),
        "volatility": volatility,
        "market_pressure": pressure,
        "regime": REGIME_NAMES[regime],
        "regime_code": regime,
    }


def _decisions(
    con: duckdb.DuckDBPyConnection, start: Any, end: Any, symbols: NDArray[Any]
) -> Arrays:
    """Rows of ``sql/features_decisions.sql``: decision points with their trade and close.

    ``symbol_code`` is the position in ``symbols`` (the bars' symbols, ``load_bars``).
    Ordered by (ts, symbol, trade_id) here: sorting three key arrays and taking the rows
    costs a third of DuckDB sorting all thirty columns. A decision without a trade has
    one row (trade_id -1); one on a symbol without candles (code -1) is dropped later.
    """
    params = {"start": start or EARLIEST, "end": end or LATEST, "symbols": list(symbols)}
    rows = _fetch(con, sql_text("features_decisions"), params)
    order = np.lexsort((rows["trade_id"], rows["symbol_code"], rows["ts"]))
    return {name: column[order] for name, column in rows.items()}


def _account_columns(
    con: duckdb.DuckDBPyConnection,
    ts: NDArray[Any],
    trade_id: NDArray[np.int64],
    traded: NDArray[np.bool_],
    config: FeatureConfig,
) -> Arrays:
    """Account state before each decision at ``ts`` and after the close of ``trade_id``.

    Before: after every trade closed before ``ts``, or at ``ts`` but entered before it (a
    trade entered and closed at ``ts`` is not known yet); the neutral start when none.
    After the close: NaN for a trade without a close, or a row without a trade
    (``traded`` False; any id, negative ones included, can be a trade's).
    """
    closes = _fetch(con, sql_text("account_closes"), {})
    acct = account_after_closes(
        closes["pnl_pct"], config.initial_equity, config.margin_unit, config.winrate_window
    )
    # a neutral row 0 (no close yet) and a NaN row 1 (no close of this trade) ahead of
    # the closes, so that every lookup is one take
    neutral = {
        "winrate": NEUTRAL_WINRATE,
        "account_health": 1.0,
        "equity_curve_slope": 0.0,
        "equity": config.initial_equity,
        "sharpe_signal": 0.0,
    }
    table = {k: np.r_[neutral[k], np.nan, v] for k, v in acct.items()}
    # the closes at ts are a block of the close order, its zero-duration ones last
    first_at = np.searchsorted(closes["closed_ts"], ts, side="left")
    after_at = np.searchsorted(closes["closed_ts"], ts, side="right")
    known = np.r_[0, np.cumsum(~closes["zero_duration"].astype(bool))]
    closed_before = (first_at + known[after_at] - known[first_at]).astype(np.int64)
    before = np.where(closed_before > 0, closed_before + 1, 0)
    order = np.argsort(closes["trade_id"], kind="stable")
    ids = closes["trade_id"][order]
    pos = np.searchsorted(ids, trade_id)
    own = traded & (pos < ids.size)
    own[own] = ids[pos[own]] == trade_id[own]
    after = np.ones(trade_id.size, np.int64)
    after[own] = order[pos[own]] + 2
    return {
        "previous_winrate": table["winrate"][before],
        "account_health": table["account_health"][before],
        "equity_curve_slope": table["equity_curve_slope"][before],
        "closed_before": closed_before,
        "equity": table["equity"][before],
        "close_winrate": table["winrate"][after],
        "close_account_health": table["account_health"][after],
        "close_equity_curve_slope": table["equity_curve_slope"][after],
        "close_sharpe_signal": table["sharpe_signal"][after],
    }


def _switch_at(switches: Arrays, ts: NDArray[Any]) -> NDArray[np.bool_]:
    """The RL switch in force at each time: the latest switch at or before it (none, NaT: on)."""
    flags = np.r_[True, switches["enable_rl"].astype(bool)]
    return flags[np.searchsorted(switches["ts"], ts, side="right") * ~np.isnat(ts)]


def _state_windows(
    tr: Arrays, bars: Arrays, at: NDArray[np.int64], prefix: str, config: FeatureConfig
) -> None:
    """Market state over the ``lookback_bars`` bars ending at bar ``at`` (-1: none) into ``tr``."""
    has = at >= 0
    lo = np.maximum(at[has] - config.lookback_bars + 1, tr["first_idx"][has])
    feats = window_features(bars, lo, at[has], config)
    volatility = np.full(at.size, np.nan)
    pressure = np.full(at.size, np.nan)
    regime = np.full(at.size, -1, np.int64)
    volatility[has] = feats["volatility"]
    pressure[has] = feats["market_pressure"]
    regime[has] = feats["regime_code"]
    tr[f"{prefix}volatility"] = volatility
    tr[f"{prefix}market_pressure"] = pressure
    tr[f"{prefix}regime"] = REGIME_NAMES[regime]


def _transitions(
    con: duckdb.DuckDBPyConnection, bars: Arrays, start: Any, end: Any, config: FeatureConfig
) -> Arrays:
    """The decision rows with their bars and market features (see ``load_transitions``)."""
    d = _decisions(con, start, end, bars["symbols"])
    code = d.pop("symbol_code").astype(np.int64)
    bar_idx = asof_bars(bars["ts"], bars["symbol_first"], bars["symbol_last"], code, d["ts"])
    keep = bar_idx >= 0  # a decision before its symbol's first bar has no state
    if not keep.all():
        d = {k: v[keep] for k, v in d.items()}
        code, bar_idx = code[keep], bar_idx[keep]
    new_point = np.ones(bar_idx.size, dtype=bool)
    new_point[1:] = (d["ts"][1:] != d["ts"][:-1]) | (code[1:] != code[:-1])
    exit_idx = asof_bars(
        bars["ts"], bars["symbol_first"], bars["symbol_last"], code, d["closed_ts"]
    )
    tr: Arrays = {
        "decision_id": np.cumsum(new_point) - 1,
        "symbol": bars["symbols"][code],
        "ts": d.pop("ts"),
    }
    for m in ("xgb", "lgbm", "nhits", "patchtst"):
        tr[f"dir_{m}"] = d.pop(f"dir_{m}")
    for m in ("xgb", "lgbm", "nhits", "patchtst"):
        tr[f"conf_{m}"] = d.pop(f"conf_{m}")
    for m in ("xgb", "lgbm", "nhits", "patchtst"):
        tr[f"regime_{m}"] = d.pop(f"regime_{m}")
    tr["confidence"] = d.pop("confidence")
    tr["bar_idx"] = bar_idx
    tr["first_idx"] = bars["symbol_first"][code]
    tr["last_idx"] = bars["symbol_last"][code]
    for name in _TRADE_COLUMNS:
        tr[name] = d.pop(name)
    tr["exit_idx"] = exit_idx
    for column, enum in _ENUM_COLUMNS.items():
        tr[column] = _names(enum)[tr[column].astype(np.int64)]
    _state_windows(tr, bars, bar_idx, "", config)
    _state_windows(tr, bars, exit_idx, "close_", config)
    held = exit_idx >= 0
    actual = np.full(exit_idx.size, -1, np.int64)
    actual[held] = window_features(bars, bar_idx[held], exit_idx[held], config)["regime_code"]
    tr["actual_regime"] = REGIME_NAMES[actual]
    traded = ~np.isnat(tr["trade_ts"])  # trades.ts is NOT NULL: NaT only without a trade
    tr.update(_account_columns(con, tr["ts"], tr["trade_id"], traded, config))
    switches = _fetch(con, sql_text("policy_switches"), {})
    tr["rl_at_signal"] = _switch_at(switches, tr["ts"])
    tr["rl_at_close"] = _switch_at(switches, tr["closed_ts"])
    return tr


def load_transitions(
    con: duckdb.DuckDBPyConnection,
    start: datetime | None = None,
    end: datetime | None = None,
    config: FeatureConfig | None = None,
    bars: Arrays | None = None,
) -> Arrays:
    """One row per decision point in ``[start, end)`` with its states, reward parts and switch.

    DuckDB pivots the signals and joins trades and closes (``sql/features_decisions.sql``);
    the bar of each decision and close and the market features over the bars come from
    ``rlv2.market``'s kernels over ``bars`` (``load_bars``, loaded if not given), the
    account before the decision and after the close from ``rlv2.account`` over the
    closes in order, the RL switch from the policy rows. NULLs (a decision without a
    trade, a trade still open) come back as NaN (floats), -1 (integers), False (flags),
    NaT (times) or None (text); but a direction ``dir_*`` of a model without a signal
    and the ``side`` of a decision without a trade are 0 (their values are -1 and +1).
    ``trade_ts`` (NaT: no trade) and ``conf_*`` (NaN: no signal) are the markers to test,
    not ``trade_id``, whose -1 can be a real id. A decision before its symbol's first
    bar, or on a symbol without candles, has no state and is left out.
    """
    config = config or FeatureConfig()
    return _transitions(con, load_bars(con) if bars is None else bars, start, end, config)


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
    """Columns of ``load_transitions``, one row per decision point and executed trade."""
    bars: Arrays
    inputs: SimulationInputs
    """Traded decisions (closed inside the window) with their counterfactual paths."""
    n_incomplete: int = 0
    """Traded decisions left out of ``inputs`` because some model gave no signal on them."""

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
    the last bar before ``end``, so a training window never sees its holdout. A traded
    decision on which some model gave no signal stays in ``transitions`` (the logged
    mode learns from it) but not in ``inputs``: the simulated replay could not follow
    an action that picks that model. ``n_incomplete`` counts them.
    """
    config = config or FeatureConfig()
    bars = load_bars(con)
    tr = load_transitions(con, start, end, config, bars)
    traded = traded_mask(tr, end)
    complete = every_model_signalled(tr)
    rows = decision_order(tr, traded & complete)
    paths = counterfactual_paths(tr, bars, rows, end)
    lo, hi = path_windows(tr, rows, paths, config.lookback_bars)
    windows = window_features(bars, lo, hi, config)
    inputs = simulation_inputs(tr, bars, rows, paths, windows)
    return WindowData(start, end, tr, bars, inputs, int((traded & ~complete).sum()))
