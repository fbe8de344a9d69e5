"""SPEC A1: the two agents' rewards and their parts, one function per formula.

Every function takes scalars or numpy arrays (broadcast element-wise) and returns a
float for scalar input, an ndarray otherwise. NaN or infinite inputs raise
``ValueError`` naming the parameter; nothing here returns a silent NaN.

Each formula is written once, as a compiled ufunc (``*_value``, typed ``Any``: a ufunc
takes scalars or arrays): the checked functions below apply it after validating their
inputs, and compiled loops (the counterfactual rewards of ``rlv2.replay``) call it on
scalars.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import numba
import numpy as np
from numpy.typing import ArrayLike, NDArray

from rlv2.domain import Regime

FloatOrArray = float | NDArray[np.float64]


@dataclass(frozen=True)
class MetaRewardWeights:
    """Weights of the meta-strategy reward (SPEC A1); a sweep may vary them."""

    drawdown: float = 0.5
    """Weight of ``max_drawdown_pct`` (subtracted)."""
    sharpe: float = 0.2
    """Weight of the Sharpe signal."""
    regime: float = 0.15
    """Weight of the regime alignment score."""


@dataclass(frozen=True)
class SizingRewardWeights:
    """Weights of the position-sizing reward (SPEC A1); a sweep may vary them."""

    risk: float = 0.4
    """Weight of the risk penalty (subtracted)."""
    volatility: float = 0.1
    """Weight of the volatility adjustment."""


LEVERAGE_FREE = 5.0
"""Leverage up to which no leverage penalty applies."""
EXPOSURE_FREE = 0.5
"""Exposure up to which no exposure penalty applies."""
RISK_PENALTY_CAP = 5.0
"""Upper bound of the combined risk penalty."""
VOL_OPTIMAL_LOW = 0.01
"""Lower end of the optimal volatility band (fraction)."""
VOL_OPTIMAL_HIGH = 0.03
"""Upper end of the optimal volatility band (fraction)."""


_F = TypeVar("_F", bound=Callable[..., Any])


def _ufunc(signature: str) -> Callable[[_F], _F]:
    """``numba.vectorize`` with one signature and the on-disk cache (typed for pyright)."""
    vectorize: Any = numba.vectorize  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    return cast(Callable[[_F], _F], vectorize([signature], cache=True))


@_ufunc("float64(int64, int64, float64)")
def alignment_value(predicted: Any, actual: Any, confidence: Any) -> Any:
    """SPEC A1 regime alignment: ``(1.0 if predicted == actual else -0.5) * confidence``."""
    return (1.0 if predicted == actual else -0.5) * confidence


@_ufunc("float64(float64, float64)")
def risk_penalty_value(leverage: Any, exposure: Any) -> Any:
    """SPEC A1 risk penalty: leverage above 5 and exposure above 0.5, capped at 5."""
    leverage_penalty = (leverage - LEVERAGE_FREE) * 0.3 if leverage > LEVERAGE_FREE else 0.0
    exposure_penalty = (exposure - EXPOSURE_FREE) * 2.0 if exposure > EXPOSURE_FREE else 0.0
    return min(leverage_penalty + exposure_penalty, RISK_PENALTY_CAP)


@_ufunc("float64(float64)")
def volatility_adjustment_value(volatility: Any) -> Any:
    """SPEC A1 volatility adjustment: 0.5 in the 1-3 % band, -0.2 below, falling above."""
    if volatility < VOL_OPTIMAL_LOW:
        return -0.2
    if volatility <= VOL_OPTIMAL_HIGH:
        return 0.5
    return -0.5 * (volatility - VOL_OPTIMAL_HIGH) / VOL_OPTIMAL_HIGH


@_ufunc("float64(float64, float64, float64, float64, float64, float64, float64)")
def meta_reward_value(
    pnl_pct: Any,
    max_drawdown_pct: Any,
    sharpe_signal: Any,
    alignment: Any,
    w_drawdown: Any,
    w_sharpe: Any,
    w_regime: Any,
) -> Any:
    """SPEC A1 meta reward: ``pnl - w_dd · dd + w_sharpe · sharpe + w_regime · alignment``."""
    return pnl_pct - w_drawdown * max_drawdown_pct + w_sharpe * sharpe_signal + w_regime * alignment


@_ufunc("float64(float64, float64, float64, float64, float64)")
def sizing_reward_value(
    pnl_pct: Any, risk_penalty: Any, volatility_adjustment: Any, w_risk: Any, w_vol: float
) -> Any:
    """SPEC A1 sizing reward: ``pnl - w_risk · risk_penalty + w_vol · volatility_adjustment``."""
    return pnl_pct - w_risk * risk_penalty + w_vol * volatility_adjustment


def finite_array(name: str, value: ArrayLike) -> NDArray[np.float64]:
    """Return ``value`` as a float array, raising ``ValueError`` naming it if not finite."""
    arr = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        bad = np.flatnonzero(~np.isfinite(arr.ravel()))
        where = f"[{int(bad[0])}]" if arr.ndim else ""
        raise ValueError(f"{name}{where} is {arr.ravel()[bad[0]]!r}; must be finite")
    return arr


def _out(arr: NDArray[np.float64]) -> FloatOrArray:
    return float(arr) if arr.ndim == 0 else arr


def sharpe_signal(returns: ArrayLike, risk_free_rate: float = 0.0) -> FloatOrArray:
    """Squash a return series' Sharpe ratio into [-1, 1] (SPEC A1, C).

    ``tanh((mean(returns) - risk_free_rate) / std(returns))`` with the population
    standard deviation. With fewer than two returns, or zero spread, the signal is 0.
    A 2-D input is a batch of series along the last axis and gives one value per row.
    """
    r = finite_array("returns", returns)
    finite_array("risk_free_rate", risk_free_rate)
    if r.ndim == 0:
        r = r.reshape(1)
    n = r.shape[-1]
    if n < 2:
        return _out(np.zeros(r.shape[:-1]))
    mean = r.mean(axis=-1)
    std = r.std(axis=-1)
    safe = np.where(std > 0.0, std, 1.0)
    signal = np.where(std > 0.0, np.tanh((mean - risk_free_rate) / safe), 0.0)
    return _out(np.asarray(signal, dtype=np.float64))


def _regime_code(value: Any) -> int:
    if isinstance(value, str):
        return Regime[value.strip().upper()].value
    return Regime(int(value)).value


def regime_codes(name: str, value: Any) -> NDArray[np.int64]:
    """Return regimes given as ``Regime``, names or codes as an int array; raise naming bad ones."""
    if isinstance(value, np.ndarray):
        ints = cast(NDArray[np.int64], value)
        if ints.dtype.kind in "iu":
            # integer code arrays (the replay's (N, A) batches) need no per-element lookup
            if ints.size and (ints.min() < 0 or ints.max() >= len(Regime)):
                raise ValueError(f"{name}: regime codes must be in [0, {len(Regime)})")
            return ints.astype(np.int64)
    arr = np.asarray(value, dtype=object)
    try:
        codes = [_regime_code(v) for v in arr.ravel()]
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(
            f"{name}: unknown regime in {value!r}; expected one of {[r.name for r in Regime]}"
        ) from exc
    return np.asarray(codes, dtype=np.int64).reshape(arr.shape)


def regime_alignment(
    predicted_regime: Any, actual_regime: Any, confidence: ArrayLike
) -> FloatOrArray:
    """Score a regime prediction: ``(1.0 if right else -0.5) * confidence`` (SPEC A1)."""
    predicted = regime_codes("predicted_regime", predicted_regime)
    actual = regime_codes("actual_regime", actual_regime)
    conf = finite_array("confidence", confidence)
    if np.any((conf < 0.0) | (conf > 1.0)):
        raise ValueError(f"confidence must be in [0, 1], got {confidence!r}")
    return _out(np.asarray(alignment_value(predicted, actual, conf), dtype=np.float64))


def risk_penalty(leverage: ArrayLike, exposure: ArrayLike) -> FloatOrArray:
    """Penalise leverage above 5 and exposure above 0.5, capped at 5.0 (SPEC A1)."""
    lev = finite_array("leverage", leverage)
    exp = finite_array("exposure", exposure)
    if np.any(lev <= 0.0):
        raise ValueError(f"leverage must be positive, got {leverage!r}")
    if np.any(exp < 0.0):
        raise ValueError(f"exposure must be non-negative, got {exposure!r}")
    return _out(np.asarray(risk_penalty_value(lev, exp), dtype=np.float64))


def volatility_adjustment(volatility: ArrayLike) -> FloatOrArray:
    """Reward volatility in the optimal 1-3 % band, penalise outside it (SPEC A1)."""
    vol = finite_array("volatility", volatility)
    if np.any(vol < 0.0):
        raise ValueError(f"volatility must be non-negative, got {volatility!r}")
    return _out(np.asarray(volatility_adjustment_value(vol), dtype=np.float64))


def meta_strategy_reward(
    pnl_pct: ArrayLike,
    max_drawdown_pct: ArrayLike,
    sharpe_signal: ArrayLike,
    regime_alignment_score: ArrayLike,
    weights: MetaRewardWeights | None = None,
) -> FloatOrArray:
    """Reward of the meta-strategy agent for one closed position (SPEC A1)."""
    w = weights or MetaRewardWeights()
    reward = meta_reward_value(
        finite_array("pnl_pct", pnl_pct),
        finite_array("max_drawdown_pct", max_drawdown_pct),
        finite_array("sharpe_signal", sharpe_signal),
        finite_array("regime_alignment_score", regime_alignment_score),
        w.drawdown,
        w.sharpe,
        w.regime,
    )
    return _out(np.asarray(reward, dtype=np.float64))


def position_sizing_reward(
    pnl_pct: ArrayLike,
    risk_penalty: ArrayLike,
    volatility_adjustment: ArrayLike,
    weights: SizingRewardWeights | None = None,
) -> FloatOrArray:
    """Reward of the position-sizing agent for one closed position (SPEC A1)."""
    w = weights or SizingRewardWeights()
    reward = sizing_reward_value(
        finite_array("pnl_pct", pnl_pct),
        finite_array("risk_penalty", risk_penalty),
        finite_array("volatility_adjustment", volatility_adjustment),
        w.risk,
        w.volatility,
    )
    return _out(np.asarray(reward, dtype=np.float64))
