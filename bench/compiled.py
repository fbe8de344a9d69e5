"""Baselines "plain C" and "tuned C": build them with the machine's compiler, call via ctypes.

The sources are ``bench/csrc/replay_plain.c`` and ``replay_tuned.c`` (the Q-learning
replay, stages 1-2) and ``accumulate_plain.c`` and ``accumulate_tuned.c`` (the
full-information learner's sums, stage 6). All are built with
``-O3 -march=native -ffp-contract=off`` into ``bench/build/`` (rebuilt when the source,
the flags or the compiler change). ``-ffp-contract=off`` keeps ``r + γ·max`` and
``q + α·td`` two roundings each, as numba does, so the Q-tables are comparable bit for bit.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bench.workloads import Events, Hyper

SOURCE_DIR = Path(__file__).parent / "csrc"
BUILD_DIR = Path(__file__).parent / "build"
CFLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-shared", "-fPIC")

_ARGTYPES = [
    ctypes.c_void_p,  # q (S, A), updated in place
    ctypes.c_int64,  # n_actions
    ctypes.c_void_p,  # states
    ctypes.c_void_p,  # rewards (N, A)
    ctypes.c_void_p,  # next_states
    ctypes.c_void_p,  # dones (bool, one byte each)
    ctypes.c_int64,  # n_events
    ctypes.c_void_p,  # hyper: alpha, gamma, epsilon, epsilon_decay, epsilon_min
    ctypes.c_uint64,  # seed
    ctypes.c_void_p,  # out: final epsilon, total reward, total |TD error|
]

_ACCUMULATE_ARGTYPES = [
    ctypes.c_void_p,  # sums (S, A), updated in place
    ctypes.c_void_p,  # counts (S,), updated in place
    ctypes.c_int64,  # n_actions
    ctypes.c_void_p,  # states
    ctypes.c_void_p,  # rewards (N, A)
    ctypes.c_int64,  # n_events
]


class CompilerError(RuntimeError):
    """The C baselines could not be built on this machine."""


def compiler() -> str:
    """The C compiler: ``$CC``, else ``cc``."""
    return os.environ.get("CC", "cc")


def compiler_version() -> str:
    """First line of ``cc --version`` (or why there is none)."""
    path = shutil.which(compiler())
    if path is None:
        return f"{compiler()}: not found"
    result = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    lines = result.stdout.splitlines()
    return lines[0] if lines else f"{compiler()}: no version"


def build(name: str) -> Path:
    """Compile ``csrc/<name>.c`` into a shared library unless an identical build exists."""
    source = SOURCE_DIR / f"{name}.c"
    cc = shutil.which(compiler())
    if cc is None:
        raise CompilerError(f"C compiler {compiler()!r} not found (set CC)")
    digest = hashlib.sha256()
    for part in (source.read_bytes(), " ".join(CFLAGS).encode(), compiler_version().encode()):
        digest.update(part)
    target = BUILD_DIR / f"{name}-{digest.hexdigest()[:12]}.so"
    if target.exists():
        return target
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    command = [cc, *CFLAGS, "-o", str(partial), str(source)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise CompilerError(f"{' '.join(command)} failed:\n{result.stderr}")
    partial.replace(target)
    return target


@dataclass(frozen=True)
class CReplay:
    """One compiled replay loop (exploring mode, ``dones`` doubling as terminals)."""

    label: str
    function: ctypes._CFuncPtr

    def __call__(
        self, q: NDArray[np.float64], events: Events, hyper: Hyper, seed: int
    ) -> NDArray[np.float64]:
        """Replay ``events`` through ``q`` in place; return (ε, total reward, total |TD|)."""
        n_events, n_actions = events.rewards.shape
        if q.shape[1] != n_actions or not (q.flags.c_contiguous and q.flags.writeable):
            raise ValueError(f"q must be a writeable C-contiguous (S, {n_actions}) array")
        for name in ("states", "rewards", "next_states", "dones"):
            if not getattr(events, name).flags.c_contiguous:
                raise ValueError(f"events.{name} must be C-contiguous")
        hyper_array = hyper.as_array()
        out = np.zeros(3)
        self.function(
            q.ctypes.data,
            n_actions,
            events.states.ctypes.data,
            events.rewards.ctypes.data,
            events.next_states.ctypes.data,
            events.dones.ctypes.data,
            n_events,
            hyper_array.ctypes.data,
            seed,
            out.ctypes.data,
        )
        return out


@dataclass(frozen=True)
class CAccumulate:
    """One compiled full-information accumulation: per event, a reward row into its state."""

    label: str
    function: ctypes._CFuncPtr

    def __call__(
        self,
        sums: NDArray[np.float64],
        counts: NDArray[np.float64],
        states: NDArray[np.int64],
        rewards: NDArray[np.float64],
    ) -> None:
        """Add ``rewards[t]`` to ``sums[states[t]]`` and count it, in place (states in range)."""
        n_events, n_actions = rewards.shape
        arrays = {"sums": sums, "counts": counts, "states": states, "rewards": rewards}
        for name, arr in arrays.items():
            dtype = np.int64 if name == "states" else np.float64
            if arr.dtype != dtype or not arr.flags.c_contiguous:
                raise ValueError(f"{name} must be a C-contiguous {np.dtype(dtype)} array")
        if sums.shape != (counts.shape[0], n_actions) or states.shape != (n_events,):
            raise ValueError(f"shapes do not fit: sums {sums.shape}, rewards {rewards.shape}")
        self.function(
            sums.ctypes.data,
            counts.ctypes.data,
            n_actions,
            states.ctypes.data,
            rewards.ctypes.data,
            n_events,
        )


def _function(name: str, argtypes: list[type]) -> ctypes._CFuncPtr:
    """Build (if needed) and load ``csrc/<name>.c``'s function ``<name>``."""
    library = ctypes.CDLL(str(build(name)))
    function = getattr(library, name)
    function.restype = None
    function.argtypes = argtypes
    return function


def load(name: str, label: str) -> CReplay:
    """Build (if needed) and load the replay loop ``csrc/<name>.c``."""
    return CReplay(label, _function(name, _ARGTYPES))


def load_baselines() -> tuple[CReplay, CReplay]:
    """The plain and the tuned C loops."""
    return (
        load("replay_plain", "baseline: plain C"),
        load("replay_tuned", "baseline: tuned C"),
    )


def load_accumulate_baselines() -> tuple[CAccumulate, CAccumulate]:
    """The plain and the tuned C full-information accumulations."""
    return (
        CAccumulate("baseline: plain C", _function("accumulate_plain", _ACCUMULATE_ARGTYPES)),
        CAccumulate("baseline: tuned C", _function("accumulate_tuned", _ACCUMULATE_ARGTYPES)),
    )
