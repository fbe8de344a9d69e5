"""SPEC C, "what an action changes": the outcome of any action, derived from the price path.

History records one action per decision. To learn about the others, the outcome of
each is rebuilt from the bars after entry, by these rules (each applied here only):

- **Strategy** decides the exit: a take-profit and a stop-loss on the position's
  directional close-to-close return, in units of the entry-time volatility ``σ``
  (per-bar return std, floored at ``sigma_floor``), and a maximum holding time in
  bars (``DEFAULT_EXIT_RULES``). The exit is at the first bar whose close crosses a
  barrier, else at ``max_bars``, else at the symbol's last bar (truncated).
- **Model** decides the direction: the chosen model's own signal (+1 / -1).
- **Weight action** scales exposure: UP × 1.25, HOLD × 1.0, DOWN × 0.75
  (``rlv2.domain.WEIGHT_EXPOSURE_SCALE``).
- **Size × leverage** scale return and drawdown. A position puts up a margin of
  ``MARGIN_FRACTION`` of the equity it opens on; size and weight scale its notional on
  that margin, so its
  effective leverage is ``e = size · w · L``. As SPEC C's units require, ``pnl_pct``
  and ``max_drawdown_pct`` are percent of the margin put up:
  ``pnl_pct = 100 · e · r`` and ``max_drawdown_pct = 100 · min(e · mae, 1)``, where
  ``r`` is the directional return to the exit and ``mae`` the maximum adverse
  excursion from the entry close, measured on the bars' highs and lows up to the
  exit. When ``e · mae >= 1`` the adverse move wiped the margin: the position is
  liquidated and ``pnl_pct = -100``.
- **The account** compounds: a close multiplies equity by ``1 + MARGIN_FRACTION ·
  pnl_pct / 100`` (``equity_after_close``), so no history can take it below zero; a
  simulation stops trading once equity falls to ``BUST_EQUITY``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numba
import numpy as np
from numpy.typing import ArrayLike, NDArray

from rlv2.domain import WEIGHT_EXPOSURE_SCALE, Strategy, WeightAction


@dataclass(frozen=True)
class ExitRule:
    """When a strategy closes its position; barriers in units of entry-time volatility."""

    take_profit: float
    """Close when the directional return reaches ``+take_profit · σ``."""
    stop_loss: float
    """Close when it falls to ``-stop_loss · σ``."""
    max_bars: int
    """Close after this many bars at the latest."""


DEFAULT_EXIT_RULES: dict[Strategy, ExitRule] = {
    Strategy.TREND: ExitRule(take_profit=6.0, stop_loss=3.0, max_bars=48),
    Strategy.RANGE: ExitRule(take_profit=2.0, stop_loss=2.0, max_bars=12),
    Strategy.BREAKOUT: ExitRule(take_profit=5.0, stop_loss=2.0, max_bars=24),
    Strategy.MEAN_REVERSION: ExitRule(take_profit=2.0, stop_loss=3.0, max_bars=16),
}
"""Default exit rule of each strategy: trend rides, range and reversion take profit early."""

WEIGHT_SCALES: NDArray[np.float64] = np.asarray(
    [WEIGHT_EXPOSURE_SCALE[w] for w in WeightAction], dtype=np.float64
)
"""Exposure scale of each weight action, indexed by its code."""

SIGMA_FLOOR = 1e-4
"""Smallest σ used for the barriers, so a flat window still gets finite barriers."""


class PathOutcome(NamedTuple):
    """Where and how a position on the price path ends (per entry)."""

    exit_idx: NDArray[np.int64]
    """Bar index of the exit."""
    ret: NDArray[np.float64]
    """Directional close-to-close return from entry to exit."""
    mae: NDArray[np.float64]
    """Maximum adverse excursion (≥ 0) from the entry close, on highs/lows up to the exit."""


@numba.njit(cache=True, nogil=True)
def _walk_paths(
    close: NDArray[np.float64],
    high: NDArray[np.float64],
    low: NDArray[np.float64],
    entry_idx: NDArray[np.int64],
    last_idx: NDArray[np.int64],
    direction: NDArray[np.int64],
    sigma: NDArray[np.float64],
    take_profit: NDArray[np.float64],
    stop_loss: NDArray[np.float64],
    max_bars: NDArray[np.int64],
    exit_idx: NDArray[np.int64],
    ret: NDArray[np.float64],
    mae: NDArray[np.float64],
) -> None:
    for i in range(entry_idx.shape[0]):
        e = entry_idx[i]
        entry = close[e]
        d = direction[i]
        tp = take_profit[i] * sigma[i]
        sl = -stop_loss[i] * sigma[i]
        end = min(e + max_bars[i], last_idx[i])
        worst = 0.0
        j = e
        r = 0.0
        while j < end:
            j += 1
            adverse = (entry - low[j]) / entry if d > 0 else (high[j] - entry) / entry
            if adverse > worst:
                worst = adverse
            r = d * (close[j] - entry) / entry
            if r >= tp or r <= sl:
                break
        exit_idx[i] = j
        ret[i] = r
        mae[i] = worst


def walk_paths(
    close: ArrayLike,
    high: ArrayLike,
    low: ArrayLike,
    entry_idx: ArrayLike,
    last_idx: ArrayLike,
    direction: ArrayLike,
    sigma: ArrayLike,
    rule: ExitRule | ArrayLike,
) -> PathOutcome:
    """Follow each entry's price path to its exit under an exit rule (see module docstring).

    ``close/high/low`` are the bars of all symbols concatenated; ``last_idx[i]`` is the
    last bar of entry ``i``'s symbol, so no path runs into another symbol. ``rule`` is one
    ``ExitRule`` for all entries, or an array of strategy codes (one rule per entry from
    ``DEFAULT_EXIT_RULES``).
    """
    c = np.ascontiguousarray(close, dtype=np.float64)
    h = np.ascontiguousarray(high, dtype=np.float64)
    lo = np.ascontiguousarray(low, dtype=np.float64)
    e = np.ascontiguousarray(entry_idx, dtype=np.int64)
    n = e.shape[0]
    if isinstance(rule, ExitRule):
        tp = np.full(n, rule.take_profit, dtype=np.float64)
        sl = np.full(n, rule.stop_loss, dtype=np.float64)
        mb = np.full(n, rule.max_bars, dtype=np.int64)
    else:
        codes = np.asarray(rule, dtype=np.int64).reshape(n)
        if np.any((codes < 0) | (codes >= len(Strategy))):
            raise ValueError(f"rule: strategy codes must be in [0, {len(Strategy)})")
        table = [DEFAULT_EXIT_RULES[s] for s in Strategy]
        tp = np.asarray([r.take_profit for r in table], dtype=np.float64)[codes]
        sl = np.asarray([r.stop_loss for r in table], dtype=np.float64)[codes]
        mb = np.asarray([r.max_bars for r in table], dtype=np.int64)[codes]
    sig = np.maximum(np.broadcast_to(np.asarray(sigma, dtype=np.float64), (n,)), SIGMA_FLOOR)
    out = PathOutcome(np.empty(n, np.int64), np.empty(n, np.float64), np.empty(n, np.float64))
    _walk_paths(
        c,
        h,
        lo,
        e,
        np.broadcast_to(np.asarray(last_idx, dtype=np.int64), (n,)).copy(),
        np.broadcast_to(np.asarray(direction, dtype=np.int64), (n,)).copy(),
        np.ascontiguousarray(sig),
        tp,
        sl,
        mb,
        out.exit_idx,
        out.ret,
        out.mae,
    )
    return out


@numba.njit(cache=True, nogil=True)
def position_outcome(
    ret: float, mae: float, size_multiplier: float, leverage: float, weight_scale: float
) -> tuple[float, float, bool]:
    """``(pnl_pct, max_drawdown_pct, liquidated)`` of one position (see module docstring)."""
    effective = size_multiplier * weight_scale * leverage
    liquidated = effective * mae >= 1.0
    pnl = -100.0 if liquidated else 100.0 * effective * ret
    return pnl, 100.0 * min(effective * mae, 1.0), liquidated


@numba.njit(cache=True, nogil=True)
def position_notional(
    size_multiplier: float, weight_scale: float, leverage: float, margin: float
) -> float:
    """Notional × leverage of one position on ``margin`` (in equity units; SPEC C
    exposure's numerator)."""
    return size_multiplier * weight_scale * margin * leverage


@numba.njit(cache=True, nogil=True)
def _outcome_kernel(
    ret: NDArray[np.float64],
    mae: NDArray[np.float64],
    size: NDArray[np.float64],
    leverage: NDArray[np.float64],
    scale: NDArray[np.float64],
    pnl: NDArray[np.float64],
    drawdown: NDArray[np.float64],
    liquidated: NDArray[np.bool_],
) -> None:
    for i in range(ret.size):
        pnl[i], drawdown[i], liquidated[i] = position_outcome(
            ret[i], mae[i], size[i], leverage[i], scale[i]
        )


def position_pnl(
    ret: ArrayLike,
    mae: ArrayLike,
    size_multiplier: ArrayLike,
    leverage: ArrayLike,
    weight_scale: ArrayLike = 1.0,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    """``position_outcome`` over broadcast arrays: pnl_pct, max_drawdown_pct, liquidated."""
    values = (ret, mae, size_multiplier, leverage, weight_scale)
    args = np.broadcast_arrays(*[np.asarray(x, dtype=np.float64) for x in values])
    shape = args[0].shape
    flat = [a.flatten() for a in args]  # a copy: broadcast views are read-only
    pnl = np.empty(flat[0].size)
    drawdown = np.empty(flat[0].size)
    liquidated = np.empty(flat[0].size, dtype=np.bool_)
    _outcome_kernel(flat[0], flat[1], flat[2], flat[3], flat[4], pnl, drawdown, liquidated)
    return pnl.reshape(shape), drawdown.reshape(shape), liquidated.reshape(shape)


INITIAL_EQUITY = 100.0
"""Account equity before the first trade."""
MARGIN_FRACTION = 0.1
"""Margin every position puts up, as a fraction of the equity: 10 %."""
BUST_EQUITY = 1.0
"""Equity at or below which the modelled account is bust (1 % of the initial) and a
simulation trades no more; compounding keeps equity positive, so only a long losing
streak gets there."""


@numba.njit(cache=True, nogil=True)
def equity_after_close(equity: float, pnl_pct: float, margin_fraction: float) -> float:
    """Equity after a close: the position's margin, ``margin_fraction`` of the equity, earned
    ``pnl_pct`` percent. Compounding keeps equity positive: ``pnl_pct >= -100`` loses at
    most the margin, never the account (SPEC C, "Account model")."""
    return equity * (1.0 + margin_fraction * pnl_pct / 100.0)


@numba.njit(cache=True, nogil=True)
def _equity_curve(pnl: NDArray[np.float64], initial: float, fraction: float) -> NDArray[np.float64]:
    out = np.empty(pnl.size)
    equity = initial
    for k in range(pnl.size):
        equity = equity_after_close(equity, pnl[k], fraction)
        out[k] = equity
    return out


def account_equity(
    pnl_pct: ArrayLike, initial: float = INITIAL_EQUITY, margin_fraction: float = MARGIN_FRACTION
) -> NDArray[np.float64]:
    """Equity after each closed trade, in close order (``equity_after_close`` in turn)."""
    pnl = np.ascontiguousarray(pnl_pct, dtype=np.float64).ravel()
    return _equity_curve(pnl, float(initial), float(margin_fraction))


def position_exposure(
    size_multiplier: ArrayLike, leverage: ArrayLike, weight_scale: ArrayLike
) -> NDArray[np.float64]:
    """Exposure a position adds (SPEC C): its notional × leverage over the equity it opens on.

    The margin is ``MARGIN_FRACTION`` of that equity, so the exposure is
    ``size · w · MARGIN_FRACTION · L`` whatever the equity: size 1.0, HOLD, at leverage 5
    is 0.5, SPEC A1's exposure threshold.
    """
    return (
        np.asarray(size_multiplier, dtype=np.float64)
        * np.asarray(weight_scale, dtype=np.float64)
        * MARGIN_FRACTION
        * np.asarray(leverage, dtype=np.float64)
    )
