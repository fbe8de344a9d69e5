"""Typed records of arrays that cross module boundaries: bars, decisions, bar windows.

The data layer (``rlv2.history``) returns them; the replay reads them. Enum columns
hold integer codes end to end (``-1``: none); names appear only where a person reads
them (``Transitions.columns``). Every array of a record has one row per item.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rlv2.domain import Model

MODEL_COLUMNS = tuple(m.name.lower() for m in Model)
"""The models in code order, as the column suffixes of the flat form (``dir_xgb``, ...)."""


@dataclass(frozen=True)
class Bars:
    """Every candle as price arrays in (symbol, ts) order, each symbol's bars contiguous."""

    ts: NDArray[Any]
    """Bar time (datetime64)."""
    high: NDArray[np.float64]
    low: NDArray[np.float64]
    close: NDArray[np.float64]
    ret: NDArray[np.float64]
    """Simple return into each bar (meaningless on a symbol's first bar, never read)."""
    symbols: NDArray[Any]
    """The symbols in code order (one row per symbol, not per bar)."""
    symbol_first: NDArray[np.int64]
    """First bar of each symbol (per symbol)."""
    symbol_last: NDArray[np.int64]
    """Last bar of each symbol (per symbol)."""


@dataclass(frozen=True)
class MarketWindows:
    """Market features of bar windows ``lo_idx..hi_idx`` (inclusive), one row per window."""

    lo_idx: NDArray[np.int64]
    hi_idx: NDArray[np.int64]
    volatility: NDArray[np.float64]
    market_pressure: NDArray[np.float64]
    regime: NDArray[np.int64]
    """Regime code of the window (SPEC C rule)."""


@dataclass(frozen=True)
class Transitions:
    """One row per decision point (and executed trade) with its states and reward parts.

    NULLs come back as NaN (floats), -1 (integers and codes), False (flags), NaT
    (times) or None (text); but a model's direction without a signal and the ``side``
    of a decision without a trade are 0. ``trade_ts`` (NaT: no trade) and
    ``model_confidence`` (NaN: no signal) are the markers to test, though ``trade_id``
    -1 also means no trade (codes start at 0).
    """

    decision_id: NDArray[np.int64]
    """Index of the decision point (one per (symbol, ts)) in time order."""
    symbol: NDArray[Any]
    ts: NDArray[Any]
    """Signal time of the decision point."""
    model_direction: NDArray[np.int64]
    """(N, 4) each model's direction (-1 short, +1 long, 0 no signal), models in code order."""
    model_confidence: NDArray[np.float64]
    """(N, 4) each model's confidence (NaN: no signal)."""
    model_regime: NDArray[np.int64]
    """(N, 4) each model's predicted regime code."""
    confidence: NDArray[np.float64]
    """Best model confidence at the decision point (the meta state's ``confidence``)."""
    bar_idx: NDArray[np.int64]
    """The bar known at the signal (``Bars`` row)."""
    first_idx: NDArray[np.int64]
    """First bar of the decision's symbol."""
    last_idx: NDArray[np.int64]
    """Last bar of the decision's symbol."""
    trade_id: NDArray[np.int64]
    """The trade's code, not its id: ids are text (``schema.sql``), and the code is the
    position of the id in the text order of all stored trade_ids, from 0 (-1: no trade).
    ``SELECT trade_id FROM trades ORDER BY trade_id LIMIT 1 OFFSET code`` gives the id."""
    trade_model: NDArray[np.int64]
    """Code of the model whose signal the trade followed."""
    trade_confidence: NDArray[np.float64]
    trade_predicted_regime: NDArray[np.int64]
    strategy: NDArray[np.int64]
    """Code of the logged strategy."""
    weight_action: NDArray[np.int64]
    """Code of the logged weight action."""
    size_multiplier: NDArray[np.float64]
    leverage: NDArray[np.float64]
    portfolio_exposure: NDArray[np.float64]
    """Logged exposure at entry, the trade itself included (SPEC C)."""
    action_prob: NDArray[np.float64]
    """The behaviour's probability of the joint (meta, sizing) action (NaN: not logged)."""
    meta_action_prob: NDArray[np.float64]
    """The behaviour's probability of the logged meta action in its state (NaN: not logged,
    or a database made before the contract had the column)."""
    sizing_action_prob: NDArray[np.float64]
    """The behaviour's probability of the logged sizing action in its state (NaN as above)."""
    side: NDArray[Any]
    trade_ts: NDArray[Any]
    closed_ts: NDArray[Any]
    pnl_pct: NDArray[np.float64]
    max_drawdown_pct: NDArray[np.float64]
    exit_idx: NDArray[np.int64]
    """The bar known at the close (-1: no close)."""
    volatility: NDArray[np.float64]
    """Market features over the bars up to the signal's bar."""
    market_pressure: NDArray[np.float64]
    regime: NDArray[np.int64]
    close_volatility: NDArray[np.float64]
    """Market features over the bars up to the close's bar."""
    close_market_pressure: NDArray[np.float64]
    close_regime: NDArray[np.int64]
    actual_regime: NDArray[np.int64]
    """Regime code over the holding period, known at close (SPEC C)."""
    previous_winrate: NDArray[np.float64]
    """Account before the decision: trailing win rate, health, slope, closes, equity."""
    account_health: NDArray[np.float64]
    equity_curve_slope: NDArray[np.float64]
    closed_before: NDArray[np.int64]
    equity: NDArray[np.float64]
    close_winrate: NDArray[np.float64]
    """Account after the trade's close (NaN without one)."""
    close_account_health: NDArray[np.float64]
    close_equity_curve_slope: NDArray[np.float64]
    close_sharpe_signal: NDArray[np.float64]
    rl_at_signal: NDArray[np.bool_]
    """The RL switch in force at the signal and at the close (SPEC C ``enable_rl``)."""
    rl_at_close: NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.ts)

    def columns(self) -> dict[str, NDArray[Any]]:
        """The flat column form: one array per column, per-model columns as ``dir_xgb``, ...."""
        out: dict[str, NDArray[Any]] = {}
        per_model = {"model_direction": "dir", "model_confidence": "conf", "model_regime": "regime"}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in per_model:
                for i, m in enumerate(MODEL_COLUMNS):
                    out[f"{per_model[f.name]}_{m}"] = value[:, i]
            else:
                out[f.name] = value
        return out

    def take(self, rows: NDArray[Any]) -> Transitions:
        """The rows ``rows`` (indices or a mask) of every column."""
        return Transitions(*(getattr(self, f.name)[rows] for f in fields(self)))


def names_of(enum: Any, codes: NDArray[Any]) -> NDArray[Any]:
    """Names of enum codes for a person to read; -1 (none) gives None."""
    names = np.asarray([e.name for e in sorted(enum, key=int)] + [None], dtype=object)
    return names[np.asarray(codes, dtype=np.int64)]


@dataclass(frozen=True)
class AccountStart:
    """The account when a window starts: what a simulation of the window starts from.

    A holdout simulated from a fresh account would see states a training window never
    saw (full health, no trailing trades); starting from the logged account at the
    window's start keeps a state's meaning the same in both (SPEC C, "Account model").
    """

    equity: float
    """Modelled equity after every close known at the start."""
    peak: float
    """Highest equity so far (the initial equity included)."""
    recent_pnl: NDArray[np.float64]
    """pnl_pct of the latest closed trades, oldest first (at most the win-rate window)."""
    recent_equity: NDArray[np.float64]
    """Equity after each of those closes."""
    open_close_ts: NDArray[Any]
    """Close time of each position open at the start (NaT: not closed in the history)."""
    open_notional: NDArray[np.float64]
    """Notional × leverage of each open position, in equity units."""
    open_pnl: NDArray[np.float64]
    """pnl_pct each open position closes with (NaN: not closed)."""

    @classmethod
    def fresh(cls, initial_equity: float) -> AccountStart:
        """An account with no trade yet."""
        empty = np.zeros(0)
        return cls(
            initial_equity,
            initial_equity,
            empty,
            empty,
            np.zeros(0, "datetime64[ns]"),
            empty,
            empty,
        )
