"""The one random generator of the learners and the evaluation: splitmix64, passed in.

A generator's whole state is a 1-element ``uint64`` array (:func:`make_rng`), handed to
every draw explicitly, never numpy's global RNG. :func:`next_u64` is splitmix64
(Steele, Lea, Flood 2014); :func:`uniform` and :func:`randint` are built on it.
Compiled loops keep the state in a local variable instead and draw with the by-value
twins :func:`uniform_step` and :func:`randint_step`: same numbers, same order.

``QLearner``, the replay kernels (``rlv2.qlearning``) and the evaluation's bootstrap
(``rlv2.evaluation``) all draw from this generator, so a seed fixes their results to
the bit. :func:`stream_seed` gives configuration k of a sweep (or bootstrap resample k)
its own stream, so that results do not depend on the thread count.

numba caches a compiled function by its own file only: after editing this module, delete
the cache files ``rlv2/__pycache__/*.nb[ic]`` so that the kernels inlining these draws are
rebuilt.
"""

from __future__ import annotations

import operator
import os

import numba
import numpy as np
from numpy.typing import NDArray

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_GOLDEN_U64 = np.uint64(_GOLDEN)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_SHIFT_11 = np.uint64(11)
_SHIFT_27 = np.uint64(27)
_SHIFT_30 = np.uint64(30)
_SHIFT_31 = np.uint64(31)
_TWO_POW_MINUS_53 = 2.0**-53

_jit = numba.njit(cache=True, nogil=True)
# The by-value draws are inlined by numba itself into the compiled loops that use them:
# LLVM left them as calls, whose register spills cost more than the draw.
_jit_inline = numba.njit(cache=True, nogil=True, inline="always")


@_jit
def _mix64(z: np.uint64) -> np.uint64:
    """Finalise a 64-bit word with splitmix64's mixing function (a bijection)."""
    z = (z ^ (z >> _SHIFT_30)) * _MIX1
    z = (z ^ (z >> _SHIFT_27)) * _MIX2
    return z ^ (z >> _SHIFT_31)


@_jit
def next_u64(rng: NDArray[np.uint64]) -> np.uint64:
    """Advance the splitmix64 state ``rng[0]`` (from :func:`make_rng`) and return 64 bits."""
    rng[0] += _GOLDEN_U64
    return _mix64(rng[0])


@_jit
def uniform(rng: NDArray[np.uint64]) -> float:
    """Draw a float uniform on [0, 1): the top 53 bits of one output times 2**-53."""
    return float(next_u64(rng) >> _SHIFT_11) * _TWO_POW_MINUS_53


@_jit
def randint(rng: NDArray[np.uint64], n: int) -> np.int64:
    """Draw an integer uniform on [0, n) as one output modulo n (bias below n / 2**64)."""
    return np.int64(next_u64(rng) % np.uint64(n))


@_jit_inline
def uniform_step(state: np.uint64) -> tuple[float, np.uint64]:
    """:func:`uniform` on a generator state held by value: (draw, new state).

    For compiled loops that keep the state in a local variable (as the kernels do).
    """
    state = state + _GOLDEN_U64
    return float(_mix64(state) >> _SHIFT_11) * _TWO_POW_MINUS_53, state


@_jit_inline
def randint_step(state: np.uint64, n: int) -> tuple[np.int64, np.uint64]:
    """:func:`randint` on a generator state held by value: (draw, new state)."""
    state = state + _GOLDEN_U64
    return np.int64(_mix64(state) % np.uint64(n)), state


def check_seed(seed: int | None) -> int:
    """Return ``seed`` checked to lie in [0, 2**64), or fresh OS entropy when None."""
    if seed is None:
        return int.from_bytes(os.urandom(8), "little")
    try:
        value = operator.index(seed)
    except TypeError:
        raise ValueError(f"seed={seed!r} is not an integer") from None
    if not 0 <= value <= _MASK64:
        raise ValueError(f"seed={value} out of range [0, 2**64)")
    return value


def make_rng(seed: int) -> NDArray[np.uint64]:
    """Create the 1-element uint64 state of a generator seeded with ``seed``."""
    return np.array([check_seed(seed)], dtype=np.uint64)


def stream_seed(seed: int, k: int) -> int:
    """Seed of configuration k's own stream in a sweep.

    ``mix64(mix64(seed) + (k + 1) · φ) mod 2**64`` with φ = 0x9E3779B97F4A7C15 and mix64
    splitmix64's finaliser: the (k+1)-th output of a splitmix64 seeded by mix64(seed).
    """
    base = int(_mix64(np.uint64(check_seed(seed))))
    k = operator.index(k)
    if k < 0:
        raise ValueError(f"k={k} must be >= 0")
    return int(_mix64(np.uint64((base + (k + 1) * _GOLDEN) & _MASK64)))
