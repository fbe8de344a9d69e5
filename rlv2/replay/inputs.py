"""What the simulated replay needs per traded decision: its features and 8 price paths.

Each traded decision gets the counterfactual price paths of every strategy's exit rule
in both directions (``rlv2.outcomes.walk_paths``), and the market features over each
path's holding period and at its close, so that any action's outcome is a lookup.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from rlv2.domain import Strategy
from rlv2.market import window_features
from rlv2.outcomes import PathOutcome, walk_paths
from rlv2.records import AccountStart, Bars, MarketWindows, Transitions
from rlv2.replay.config import decision_order, every_model_signalled, traded_mask
from rlv2.replay.logged import logged_actions
from rlv2.states import FeatureConfig

N_PATHS = len(Strategy) * 2
"""Counterfactual price paths per decision: each strategy's exit rule × both directions."""


class SimulationInputs(NamedTuple):
    """What the simulator needs per traded decision (D of them, in decision-time order).

    Path ``p = strategy * 2 + (direction > 0)`` indexes the 8 counterfactual price paths
    of a decision (each strategy's exit rule, long or short).
    """

    rows: NDArray[np.int64]
    """Row of each decision in the transitions arrays."""
    ts: NDArray[Any]
    """Signal time."""
    regime: NDArray[np.int64]
    volatility: NDArray[np.float64]
    market_pressure: NDArray[np.float64]
    confidence: NDArray[np.float64]
    """Best model confidence of the decision point (the meta state's ``confidence``)."""
    directions: NDArray[np.int64]
    """(D, 4) each model's direction."""
    confidences: NDArray[np.float64]
    """(D, 4) each model's confidence."""
    predicted: NDArray[np.int64]
    """(D, 4) each model's predicted regime code."""
    logged_meta: NDArray[np.int64]
    logged_sizing: NDArray[np.int64]
    exit_ts: NDArray[Any]
    """(D, 8) close time of each path."""
    ret: NDArray[np.float64]
    """(D, 8) directional return of each path."""
    mae: NDArray[np.float64]
    """(D, 8) maximum adverse excursion of each path."""
    hold_regime: NDArray[np.int64]
    """(D, 8) actual regime over each path's holding period."""
    close_volatility: NDArray[np.float64]
    close_market_pressure: NDArray[np.float64]
    close_regime: NDArray[np.int64]
    start: AccountStart
    """The account when the window starts: the simulation's starting point."""


def last_bar_before(tr: Transitions, bars: Bars, rows: NDArray[np.int64], end: Any) -> Any:
    """Per row, the last bar of its symbol stamped before ``end`` (None: the symbol's last)."""
    last = tr.last_idx[rows].astype(np.int64)
    if end is None:
        return last
    first = tr.first_idx[rows].astype(np.int64)
    cut = last.copy()
    for f in np.unique(first):
        sel = first == f
        l_idx = int(last[sel][0])
        n_before = np.searchsorted(bars.ts[f : l_idx + 1], np.datetime64(end), side="left")
        cut[sel] = f + n_before - 1
    return np.maximum(cut, tr.bar_idx[rows].astype(np.int64))


def counterfactual_paths(
    tr: Transitions, bars: Bars, rows: NDArray[np.int64], end: Any = None
) -> PathOutcome:
    """Walk the 8 counterfactual paths of each decision; arrays of shape (D * 8,).

    With ``end``, no path runs past the last bar before it (walk-forward: a training
    window never looks at the holdout's prices).
    """
    strategies = np.tile(np.repeat(np.arange(len(Strategy)), 2), len(rows))
    directions = np.tile(np.asarray([-1, 1]), len(rows) * len(Strategy))
    per_path = np.repeat(rows, N_PATHS)
    return walk_paths(
        bars.close,
        bars.high,
        bars.low,
        tr.bar_idx[per_path],
        np.repeat(last_bar_before(tr, bars, rows, end), N_PATHS),
        directions,
        tr.volatility[per_path],
        strategies,
    )


def path_windows(
    tr: Transitions, rows: NDArray[np.int64], paths: PathOutcome, lookback: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Bar windows whose features the paths need: holding periods, then close states."""
    per_path = np.repeat(rows, N_PATHS)
    entry = tr.bar_idx[per_path].astype(np.int64)
    first = tr.first_idx[per_path].astype(np.int64)
    close_lo = np.maximum(paths.exit_idx - lookback + 1, first)
    return np.r_[entry, close_lo], np.r_[paths.exit_idx, paths.exit_idx]


def simulation_inputs(
    tr: Transitions,
    bars: Bars,
    rows: NDArray[np.int64],
    paths: PathOutcome,
    windows: MarketWindows,
    start: AccountStart,
) -> SimulationInputs:
    """Assemble the simulator's arrays from transitions, bars, paths and window features."""
    d = len(rows)
    shape = (d, N_PATHS)
    n = d * N_PATHS
    meta_logged, sizing_logged = logged_actions(tr, rows) if d else (np.zeros(0, np.int64),) * 2
    return SimulationInputs(
        rows=rows,
        ts=tr.ts[rows],
        regime=tr.regime[rows].astype(np.int64),
        volatility=tr.volatility[rows].astype(np.float64),
        market_pressure=tr.market_pressure[rows].astype(np.float64),
        confidence=tr.confidence[rows].astype(np.float64),
        directions=tr.model_direction[rows].astype(np.int64),
        confidences=tr.model_confidence[rows].astype(np.float64),
        predicted=tr.model_regime[rows].astype(np.int64),
        logged_meta=meta_logged,
        logged_sizing=sizing_logged,
        exit_ts=bars.ts[paths.exit_idx].reshape(shape),
        ret=paths.ret.reshape(shape),
        mae=paths.mae.reshape(shape),
        hold_regime=windows.regime[:n].astype(np.int64).reshape(shape),
        close_volatility=windows.volatility[n:].astype(np.float64).reshape(shape),
        close_market_pressure=windows.market_pressure[n:].astype(np.float64).reshape(shape),
        close_regime=windows.regime[n:].astype(np.int64).reshape(shape),
        start=start,
    )


def prepare_inputs(
    tr: Transitions,
    bars: Bars,
    end: Any,
    config: FeatureConfig,
    start: AccountStart | None = None,
) -> tuple[SimulationInputs, int]:
    """The simulation inputs of a window ending at ``end``, and the decisions left out.

    ``start`` is the account the simulation starts from (None: a fresh one).

    Only trades closed before ``end`` are used, and no counterfactual path runs past
    the last bar before ``end``, so a training window never sees its holdout. A traded
    decision on which some model gave no signal is left out (the simulated replay could
    not follow an action that picks that model); the second value counts them.
    """
    traded = traded_mask(tr, end)
    complete = every_model_signalled(tr)
    rows = decision_order(tr, traded & complete)
    paths = counterfactual_paths(tr, bars, rows, end)
    lo, hi = path_windows(tr, rows, paths, config.lookback_bars)
    windows = window_features(bars, lo, hi, config)
    account = start or AccountStart.fresh(config.initial_equity)
    inputs = simulation_inputs(tr, bars, rows, paths, windows, account)
    return inputs, int((traded & ~complete).sum())
