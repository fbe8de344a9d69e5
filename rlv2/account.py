"""Compiled account features after each closed trade (SPEC A2, C), in close order.

The equity curve (each close compounds: ``rlv2.outcomes.equity_after_close``), the drawdown-based
account health (equity over its running peak, the initial equity included), and over
the trailing ``window`` closed trades the win rate (``pnl_pct > 0``), the Sharpe signal
of the returns ``pnl_pct / 100`` (``rlv2.rewards.sharpe_signal``) and the equity-curve
slope over mean equity (``rlv2.states.equity_curve_slope``). The trailing helpers are
shared with the compiled policy evaluation in ``rlv2.replay``; ``rlv2.states`` and
``rlv2.rewards`` stay the readable definitions, tested equal to these.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numpy.typing import NDArray

from rlv2.outcomes import equity_after_close

_jit = numba.njit(cache=True, nogil=True)


@_jit
def trailing_winrate(pnl: NDArray[np.float64], a: int, b: int) -> float:
    """Share of ``pnl[a:b]`` above 0; the neutral 0.5 when empty."""
    if b <= a:
        return 0.5
    wins = 0
    for i in range(a, b):
        if pnl[i] > 0.0:
            wins += 1
    return wins / (b - a)


@_jit
def trailing_sharpe(pnl: NDArray[np.float64], a: int, b: int) -> float:
    """``tanh(mean / std)`` of the returns ``pnl[a:b] / 100``; 0 under 2 or with no spread."""
    n = b - a
    if n < 2:
        return 0.0
    mean = 0.0
    for i in range(a, b):
        mean += pnl[i] / 100.0
    mean /= n
    var = 0.0
    for i in range(a, b):
        var += (pnl[i] / 100.0 - mean) ** 2
    std = math.sqrt(var / n)
    return math.tanh(mean / std) if std > 0.0 else 0.0


@_jit
def trailing_slope(equity: NDArray[np.float64], a: int, b: int) -> float:
    """Least-squares slope of ``equity[a:b]`` over its index, over its mean; 0 under 2."""
    n = b - a
    if n < 2:
        return 0.0
    sx = 0.0
    sxx = 0.0
    sy = 0.0
    sxy = 0.0
    for i in range(n):
        y = equity[a + i]
        sx += i
        sxx += i * i
        sy += y
        sxy += y * i
    mean = sy / n
    if mean == 0.0:
        return 0.0
    return (n * sxy - sx * sy) / (n * sxx - sx * sx) / mean


@_jit
def _equity_kernel(
    pnl: NDArray[np.float64],
    initial_equity: float,
    margin_fraction: float,
    out: NDArray[np.float64],
) -> None:
    equity = initial_equity
    peak = initial_equity
    for k in range(pnl.size):
        equity = equity_after_close(equity, pnl[k], margin_fraction)
        out[k, 0] = equity
        peak = max(peak, equity)
        out[k, 1] = equity / peak


@_jit
def _recorded_kernel(
    equity: NDArray[np.float64],
    peak: NDArray[np.float64],
    initial_equity: float,
    out: NDArray[np.float64],
) -> None:
    for k in range(equity.size):
        out[k, 0] = equity[k]
        out[k, 1] = equity[k] / max(initial_equity, peak[k], equity[k])


@numba.njit(cache=True, nogil=True, parallel=True)
def _trailing_kernel(pnl: NDArray[np.float64], window: int, out: NDArray[np.float64]) -> None:
    equity = out[:, 0]
    for k in numba.prange(pnl.size):
        a = max(0, k + 1 - window)
        out[k, 2] = trailing_winrate(pnl, a, k + 1)
        out[k, 3] = trailing_sharpe(pnl, a, k + 1)
        out[k, 4] = trailing_slope(equity, a, k + 1)


ACCOUNT_COLUMNS = ("equity", "account_health", "winrate", "sharpe_signal", "equity_curve_slope")
"""The features ``account_after_closes`` returns, per closed trade."""


def account_after_closes(
    pnl_pct: NDArray[np.float64],
    initial_equity: float,
    margin_fraction: float,
    window: int,
    recorded: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None,
) -> dict[str, NDArray[np.float64]]:
    """Account features after each closed trade of ``pnl_pct`` (in close order).

    ``recorded``, when the live system recorded its equity: (equity, peak) after each
    close, the equity then and the highest recorded up to then (in units where the first
    recorded is ``initial_equity``), used instead of the model's compounding: health is
    equity over that peak, the slope is over the recorded equity. Win rate and Sharpe
    come from ``pnl_pct`` either way.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    pnl = np.ascontiguousarray(pnl_pct, dtype=np.float64)
    if not np.all(np.isfinite(pnl)):
        raise ValueError("pnl_pct must be finite")
    out = np.empty((pnl.size, len(ACCOUNT_COLUMNS)), np.float64)
    # the equity curve is a running product (one pass in order); each trailing window
    # then depends only on it, so those run in parallel
    if recorded is None:
        _equity_kernel(pnl, float(initial_equity), float(margin_fraction), out)
    else:
        equity, peak = (np.ascontiguousarray(a, dtype=np.float64) for a in recorded)
        for values in (equity, peak):
            if values.shape != pnl.shape or not np.all(np.isfinite(values) & (values > 0)):
                raise ValueError("recorded equity and peak must be finite and > 0, one per close")
        _recorded_kernel(equity, peak, float(initial_equity), out)
    _trailing_kernel(pnl, int(window), out)
    return {name: out[:, i].copy() for i, name in enumerate(ACCOUNT_COLUMNS)}
