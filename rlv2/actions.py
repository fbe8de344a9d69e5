"""SPEC A3: the two action spaces, their stable integer codes, and ε-greedy selection.

Meta-strategy: 4 strategies × 4 models × 3 weight actions = 48 actions, coded
``strategy * 12 + model * 3 + weight_action``. Position sizing: 8 size multipliers ×
7 leverage levels = 56 actions, coded ``size_index * 7 + leverage_index``. The codes
follow the enum and tuple orders of ``rlv2.domain`` and never change.

Selection is ε-greedy through ``epsilon_greedy(q_row, epsilon, rng)`` (re-exported from
``rlv2.qlearning``, where its one draw sequence is documented; ``rng = make_rng(seed)``,
re-exported from ``rlv2.rng``), so the agents, ``QLearner`` and the compiled kernels all
draw alike.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
from numpy.typing import ArrayLike, NDArray

from rlv2.domain import LEVERAGES, SIZE_MULTIPLIERS, Model, Strategy, WeightAction
from rlv2.qlearning import epsilon_greedy
from rlv2.rng import make_rng

__all__ = [
    "MetaAction",
    "MetaActionSpace",
    "SizingAction",
    "SizingActionSpace",
    "epsilon_greedy",
    "make_rng",
    "meta_space",
    "sizing_space",
]

N_META_ACTIONS = len(Strategy) * len(Model) * len(WeightAction)
"""Size of the meta-strategy action space (48)."""
N_SIZING_ACTIONS = len(SIZE_MULTIPLIERS) * len(LEVERAGES)
"""Size of the position-sizing action space (56)."""


_N_MODELS = len(Model)
_N_WEIGHTS = len(WeightAction)
_N_LEVERAGES = len(LEVERAGES)


@numba.njit(cache=True, nogil=True)
def meta_action_parts(code: int) -> tuple[int, int, int]:
    """(strategy, model, weight action) codes of a meta action code; the one decoding rule."""
    return code // (_N_MODELS * _N_WEIGHTS), (code // _N_WEIGHTS) % _N_MODELS, code % _N_WEIGHTS


@numba.njit(cache=True, nogil=True)
def sizing_action_parts(code: int) -> tuple[int, int]:
    """(size multiplier index, leverage index) of a sizing action code."""
    return code // _N_LEVERAGES, code % _N_LEVERAGES


class MetaAction(NamedTuple):
    """A decoded meta-strategy action."""

    strategy: Strategy
    model: Model
    weight_action: WeightAction


class SizingAction(NamedTuple):
    """A decoded position-sizing action."""

    size_multiplier: float
    leverage: int


def _codes(name: str, value: ArrayLike, n: int) -> NDArray[np.int64]:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iub" and not (
        arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))
    ):
        raise ValueError(f"{name} must be integer codes, got {value!r}")
    codes = arr.astype(np.int64)
    if np.any((codes < 0) | (codes >= n)):
        raise ValueError(f"{name} out of range [0, {n}): {value!r}")
    return codes


def _scalar_or_array(arr: NDArray[np.int64]) -> int | NDArray[np.int64]:
    return int(arr) if arr.ndim == 0 else arr


class MetaActionSpace:
    """The 48 meta-strategy actions: strategy × model × weight action."""

    n: int = N_META_ACTIONS

    def encode(
        self, strategy: ArrayLike, model: ArrayLike, weight_action: ArrayLike
    ) -> int | NDArray[np.int64]:
        """Code of (strategy, model, weight action); enums or their integer values."""
        s = _codes("strategy", strategy, len(Strategy))
        m = _codes("model", model, len(Model))
        w = _codes("weight_action", weight_action, len(WeightAction))
        return _scalar_or_array(s * (len(Model) * len(WeightAction)) + m * len(WeightAction) + w)

    def decode(self, code: int) -> MetaAction:
        """Parts of one meta-strategy action code."""
        s, m, w = meta_action_parts(int(_codes("meta action code", code, self.n)))
        return MetaAction(Strategy(s), Model(m), WeightAction(w))

    def decode_arrays(self, codes: ArrayLike) -> tuple[NDArray[np.int64], ...]:
        """Vectorised decode: (strategy, model, weight_action) code arrays."""
        c = _codes("meta action codes", codes, self.n)
        s, rest = np.divmod(c, len(Model) * len(WeightAction))
        m, w = np.divmod(rest, len(WeightAction))
        return s, m, w

    def label(self, code: int) -> str:
        """Readable label, e.g. ``TREND/XGB/WEIGHT_UP``."""
        a = self.decode(code)
        return f"{a.strategy.name}/{a.model.name}/{a.weight_action.name}"

    def labels(self) -> list[str]:
        """Labels of all codes, in code order."""
        return [self.label(c) for c in range(self.n)]


class SizingActionSpace:
    """The 56 position-sizing actions: size multiplier × leverage."""

    n: int = N_SIZING_ACTIONS

    def encode(self, size_multiplier: ArrayLike, leverage: ArrayLike) -> int | NDArray[np.int64]:
        """Code of (size multiplier, leverage), given as their values (e.g. 1.3, 5)."""
        size = np.asarray(size_multiplier, dtype=np.float64)
        lev = np.asarray(leverage, dtype=np.float64)
        sizes = np.asarray(SIZE_MULTIPLIERS)
        size_idx = np.argmin(np.abs(size[..., None] - sizes), axis=-1)
        if not np.allclose(sizes[size_idx], size, rtol=0.0, atol=1e-9):
            raise ValueError(f"size_multiplier must be one of {SIZE_MULTIPLIERS}, got {size!r}")
        lev_idx = _codes("leverage - 1", lev - LEVERAGES[0], len(LEVERAGES))
        return _scalar_or_array(size_idx.astype(np.int64) * len(LEVERAGES) + lev_idx)

    def decode(self, code: int) -> SizingAction:
        """Parts of one position-sizing action code."""
        s, lv = sizing_action_parts(int(_codes("sizing action code", code, self.n)))
        return SizingAction(SIZE_MULTIPLIERS[s], LEVERAGES[lv])

    def decode_arrays(self, codes: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """Vectorised decode: (size multiplier, leverage) value arrays."""
        c = _codes("sizing action codes", codes, self.n)
        s, lv = np.divmod(c, len(LEVERAGES))
        return np.asarray(SIZE_MULTIPLIERS)[s], np.asarray(LEVERAGES, dtype=np.int64)[lv]

    def label(self, code: int) -> str:
        """Readable label, e.g. ``size=1.3x/lev=5``."""
        a = self.decode(code)
        return f"size={a.size_multiplier:g}x/lev={a.leverage}"

    def labels(self) -> list[str]:
        """Labels of all codes, in code order."""
        return [self.label(c) for c in range(self.n)]


meta_space = MetaActionSpace()
"""The meta-strategy action space (48)."""
sizing_space = SizingActionSpace()
"""The position-sizing action space (56)."""
