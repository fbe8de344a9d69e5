"""Compiled market features of many bar windows at once (SPEC A2, C) and the bar lookup.

The feature SQL leaves the arithmetic over price windows to these kernels: for each
window ``lo..hi`` (inclusive indices into one symbol's bars) the volatility, market
pressure and regime label of ``rlv2.states``, computed in one pass over the bars with no
per-window allocation. ``rlv2.states`` stays the readable definition; the tests hold the
two equal on real bars. :func:`asof_bars` finds the bar known at a time (the last bar
stamped at or before it) by a galloping search within the symbol's bars.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numpy.typing import NDArray

from rlv2.domain import Regime
from rlv2.records import Bars, MarketWindows
from rlv2.states import FeatureConfig, RegimeRule

_jit = numba.njit(cache=True, nogil=True)
_pjit = numba.njit(cache=True, nogil=True, parallel=True)

_TREND = int(Regime.TREND)
_RANGE = int(Regime.RANGE)
_BREAKOUT = int(Regime.BREAKOUT)
_MEAN_REVERSION = int(Regime.MEAN_REVERSION)


@_jit
def _mean_std(x: NDArray[np.float64], a: int, b: int) -> tuple[float, float]:
    """Mean and population std (``ddof=0``) of ``x[a:b]``; ``b > a`` required."""
    n = b - a
    mean = 0.0
    for i in range(a, b):
        mean += x[i]
    mean /= n
    var = 0.0
    for i in range(a, b):
        d = x[i] - mean
        var += d * d
    return mean, math.sqrt(var / n)


@_jit
def _volatility(ret: NDArray[np.float64], a: int, b: int) -> float:
    """Population std of the simple returns ``ret[a+1..b]`` of ``close[a..b]``; 0 under 2 bars."""
    if b - a < 1:
        return 0.0
    return _mean_std(ret, a + 1, b + 1)[1]


@_jit
def _is_breakout(
    close: NDArray[np.float64], ret: NDArray[np.float64], a: int, b: int, breakout_k: float
) -> bool:
    """A new extreme of ``close[a..b]`` whose last return exceeds k times the earlier rms."""
    prior_max = close[a]
    prior_min = close[a]
    sq = 0.0
    for i in range(a + 1, b):
        prior_max = max(prior_max, close[i])
        prior_min = min(prior_min, close[i])
        sq += ret[i] * ret[i]
    last = close[b]
    if not (last > prior_max or last < prior_min):
        return False
    return abs(ret[b]) > breakout_k * math.sqrt(sq / (b - a - 1))


@_jit
def _is_stretched(close: NDArray[np.float64], a: int, b: int, reversion_z: float) -> bool:
    """``|p[-1] - mean(p)| >= z * std(p)`` with ``std(p) > 0`` over ``close[a..b]``."""
    mean, std = _mean_std(close, a, b + 1)
    return std > 0.0 and abs(close[b] - mean) >= reversion_z * std


@_jit
def _regime(
    close: NDArray[np.float64],
    ret: NDArray[np.float64],
    a: int,
    b: int,
    breakout_k: float,
    trend_efficiency: float,
    reversion_z: float,
) -> int:
    """Regime code of ``close[a..b]`` by the rule of ``rlv2.states.label_regime``."""
    if b - a + 1 < 3:
        return _RANGE
    if _is_breakout(close, ret, a, b, breakout_k):
        return _BREAKOUT
    path = 0.0
    for i in range(a + 1, b + 1):
        path += abs(close[i] - close[i - 1])
    efficiency = abs(close[b] - close[a]) / path if path > 0.0 else 0.0
    if efficiency >= trend_efficiency:
        return _TREND
    if _is_stretched(close, a, b, reversion_z):
        return _MEAN_REVERSION
    return _RANGE


@_pjit
def _window_kernel(
    close: NDArray[np.float64],
    ret: NDArray[np.float64],
    lo: NDArray[np.int64],
    hi: NDArray[np.int64],
    pressure_bars: int,
    breakout_k: float,
    trend_efficiency: float,
    reversion_z: float,
    volatility: NDArray[np.float64],
    pressure: NDArray[np.float64],
    regime: NDArray[np.int64],
) -> None:
    for w in numba.prange(lo.size):
        a, b = lo[w], hi[w]
        volatility[w] = _volatility(ret, a, b)
        if b - a + 1 >= pressure_bars:
            ref = close[b - pressure_bars + 1]
            pressure[w] = math.tanh((close[b] - ref) / ref * 20.0)
        else:
            pressure[w] = 0.0
        regime[w] = _regime(close, ret, a, b, breakout_k, trend_efficiency, reversion_z)


def simple_returns(close: NDArray[np.float64]) -> NDArray[np.float64]:
    """``ret[i] = (close[i] - close[i-1]) / close[i-1]`` (SPEC A2); ``ret[0]`` is NaN.

    Windows never read the return into their own first bar, so a return across two
    symbols' bars is never used.
    """
    close = np.asarray(close, dtype=np.float64)
    ret = np.empty_like(close)
    if close.size:
        ret[0] = np.nan
        np.divide(close[1:] - close[:-1], close[:-1], out=ret[1:])
    return ret


def window_market_features(
    close: NDArray[np.float64],
    lo: NDArray[np.int64],
    hi: NDArray[np.int64],
    pressure_bars: int = 5,
    rule: RegimeRule | None = None,
    returns: NDArray[np.float64] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """Volatility, market pressure and regime code of each window ``close[lo..hi]``.

    Mirrors ``rlv2.states``: volatility is the population std of the window's simple
    returns (0 under 2 bars), pressure ``tanh(20 (p[-1] - p[-k]) / p[-k])`` with
    ``k = pressure_bars`` (0 under k bars), the regime by ``label_regime``'s rule.
    ``returns`` (``simple_returns(close)``) saves recomputing them on every call.
    """
    rule = rule or RegimeRule()
    lo = np.ascontiguousarray(lo, dtype=np.int64)
    hi = np.ascontiguousarray(hi, dtype=np.int64)
    if lo.shape != hi.shape:
        raise ValueError(f"lo and hi differ in shape: {lo.shape} vs {hi.shape}")
    if lo.size and (lo.min() < 0 or hi.max() >= close.size or np.any(hi < lo)):
        raise ValueError(f"windows must satisfy 0 <= lo <= hi < {close.size}")
    n = lo.size
    volatility = np.empty(n, np.float64)
    pressure = np.empty(n, np.float64)
    regime = np.empty(n, np.int64)
    close = np.ascontiguousarray(close, dtype=np.float64)
    if returns is None:
        returns = simple_returns(close)
    elif returns.shape != close.shape:
        raise ValueError(f"returns must have the shape of close {close.shape}")
    _window_kernel(
        close,
        np.ascontiguousarray(returns, dtype=np.float64),
        lo,
        hi,
        int(pressure_bars),
        float(rule.breakout_k),
        float(rule.trend_efficiency),
        float(rule.reversion_z),
        volatility,
        pressure,
        regime,
    )
    return volatility, pressure, regime


@_jit
def _last_at_or_before(bar_ts: NDArray[np.int64], a: int, b: int, t: int) -> int:
    """Binary search: the first index in ``a..b`` whose time is after ``t`` (``b``: none)."""
    while a < b:
        m = (a + b) >> 1
        if bar_ts[m] <= t:
            a = m + 1
        else:
            b = m
    return a


@_jit
def _asof_kernel(
    bar_ts: NDArray[np.int64],
    first: NDArray[np.int64],
    last: NDArray[np.int64],
    code: NDArray[np.int64],
    ts: NDArray[np.int64],
    valid: NDArray[np.bool_],
    out: NDArray[np.int64],
) -> None:
    # Rows mostly come in time order, so each symbol's search starts where its previous
    # one ended and gallops forward (1, 2, 4, ... bars) before the binary search: near
    # O(1) per row, on bars still in cache. A row earlier than the previous one of its
    # symbol searches the whole range; the answer is the same either way.
    start = first.copy()
    for i in range(ts.size):
        c = code[i]
        if c < 0 or not valid[i]:
            out[i] = -1
            continue
        t = ts[i]
        lo = int(first[c])
        a, end = int(start[c]), int(last[c]) + 1
        if a > lo and bar_ts[a - 1] > t:
            a = lo
            b = end
        else:
            step = 1
            b = a
            while b < end and bar_ts[b] <= t:
                a = b + 1
                b = a + step
                step <<= 1
            if b > end:
                b = end
        a = _last_at_or_before(bar_ts, a, b, t)
        start[c] = a
        out[i] = a - 1 if a - 1 >= lo else -1


def asof_bars(
    bar_ts: NDArray[np.datetime64],
    symbol_first: NDArray[np.int64],
    symbol_last: NDArray[np.int64],
    symbol_code: NDArray[np.int64],
    ts: NDArray[np.datetime64],
) -> NDArray[np.int64]:
    """Index of the last bar of each row's symbol stamped at or before its time; -1 if none.

    ``bar_ts`` is sorted within each symbol's range ``symbol_first[c]..symbol_last[c]``;
    a row with ``symbol_code`` -1 (no bars) or a NaT time gets -1.
    """
    times = np.asarray(ts, dtype="datetime64[us]")
    out = np.empty(times.size, np.int64)
    _asof_kernel(
        np.ascontiguousarray(np.asarray(bar_ts, dtype="datetime64[us]").view(np.int64)),
        np.ascontiguousarray(symbol_first, dtype=np.int64),
        np.ascontiguousarray(symbol_last, dtype=np.int64),
        np.ascontiguousarray(symbol_code, dtype=np.int64),
        np.ascontiguousarray(times.view(np.int64)),
        ~np.isnat(times),
        out,
    )
    return out


def window_features(
    bars: Bars,
    lo_idx: NDArray[np.int64],
    hi_idx: NDArray[np.int64],
    config: FeatureConfig | None = None,
) -> MarketWindows:
    """Market features of bar windows ``lo_idx..hi_idx`` (inclusive) of ``bars``, aligned."""
    config = config or FeatureConfig()
    volatility, pressure, regime = window_market_features(
        bars.close, lo_idx, hi_idx, config.pressure_bars, config.regime_rule, bars.ret
    )
    return MarketWindows(
        lo_idx=np.asarray(lo_idx, dtype=np.int64),
        hi_idx=np.asarray(hi_idx, dtype=np.int64),
        volatility=volatility,
        market_pressure=pressure,
        regime=regime,
    )
