"""The benchmark's workloads: Q-table shapes from the SPEC, random events, hyperparameters.

Generating a workload is never timed. Every generator is seeded, so two runs replay
the same events and the Q-tables of rlv2 and of the baselines can be compared.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rlv2.actions import meta_space, sizing_space
from rlv2.states import META_STATE_SPACE, SIZING_STATE_SPACE, StateSpace

EVENTS_SEED = 20_240_601
"""Seed of the event generator."""
REPLAY_SEED = 7
"""Seed of the ε-greedy stream of every replay (and of the sweep's streams)."""


@dataclass(frozen=True)
class Case:
    """One Q-table shape of the SPEC, with the names a trading bot would key it by."""

    name: str
    """Short label printed in the tables."""
    state_space: StateSpace
    action_labels: tuple[str, ...]
    """Readable action names in code order (``meta_space.labels()``, ...)."""

    @property
    def n_states(self) -> int:
        """S, the number of discrete states."""
        return self.state_space.n_states

    @property
    def n_actions(self) -> int:
        """A, the number of actions."""
        return len(self.action_labels)

    @property
    def label(self) -> str:
        """Name and shape, e.g. ``meta S=972 A=48``."""
        return f"{self.name} S={self.n_states} A={self.n_actions}"

    def state_keys(self) -> list[str]:
        """Readable key of every state index, e.g. ``regime=2|volatility=0|...``."""
        sizes = [f.n_bins for f in self.state_space.features]
        names = self.state_space.feature_names
        digits = np.unravel_index(np.arange(self.n_states), sizes)
        return [
            "|".join(f"{name}={int(d[i])}" for name, d in zip(names, digits, strict=True))
            for i in range(self.n_states)
        ]


META = Case("meta", META_STATE_SPACE, tuple(meta_space.labels()))
SIZING = Case("sizing", SIZING_STATE_SPACE, tuple(sizing_space.labels()))
CASES = (META, SIZING)


@dataclass(frozen=True)
class Events:
    """N replay events in the dtypes rlv2's kernels use without copying."""

    states: NDArray[np.int64]
    rewards: NDArray[np.float64]
    """(N, A): the reward each action would have earned (exploring mode)."""
    next_states: NDArray[np.int64]
    dones: NDArray[np.bool_]
    """Episode ends, which are also the terminals (SPEC C's default)."""

    @property
    def n_events(self) -> int:
        """N."""
        return int(self.states.shape[0])

    @property
    def nbytes(self) -> int:
        """Memory the four arrays occupy."""
        arrays = (self.states, self.rewards, self.next_states, self.dones)
        return sum(a.nbytes for a in arrays)

    def head(self, n: int) -> Events:
        """The first n events, as views."""
        return Events(self.states[:n], self.rewards[:n], self.next_states[:n], self.dones[:n])

    def with_episode_length(self, length: int) -> Events:
        """The same transitions cut into episodes of ``length`` events (``done`` at each end)."""
        dones = np.arange(1, self.n_events + 1) % length == 0
        return Events(self.states, self.rewards, self.next_states, dones)


def make_events(case: Case, n_events: int, *, seed: int = EVENTS_SEED) -> Events:
    """Random events: uniform states and next states, normal rewards, one event per episode."""
    rng = np.random.default_rng([seed, case.n_states, case.n_actions, n_events])
    states = rng.integers(0, case.n_states, n_events, dtype=np.int64)
    next_states = rng.integers(0, case.n_states, n_events, dtype=np.int64)
    rewards = rng.standard_normal((n_events, case.n_actions))
    return Events(states, rewards, next_states, np.ones(n_events, dtype=np.bool_))


@dataclass(frozen=True)
class Hyper:
    """Hyperparameters of one replay (the issue's benchmark values)."""

    alpha: float = 0.1
    gamma: float = 0.99
    epsilon: float = 0.1
    epsilon_decay: float = 0.995
    epsilon_min: float = 0.01

    def as_kwargs(self) -> dict[str, float]:
        """Keyword arguments of ``rlv2.qlearning.replay``."""
        return {
            "alpha": self.alpha,
            "gamma": self.gamma,
            "epsilon": self.epsilon,
            "epsilon_decay": self.epsilon_decay,
            "epsilon_min": self.epsilon_min,
        }

    def as_array(self) -> NDArray[np.float64]:
        """(alpha, gamma, epsilon, epsilon_decay, epsilon_min), the C baselines' layout."""
        return np.array(list(self.as_kwargs().values()), dtype=np.float64)


BENCH_HYPER = Hyper()


@dataclass(frozen=True)
class SweepGrid:
    """K configurations for ``replay_sweep``: α, γ and ε vary, the decay schedule does not."""

    alpha: NDArray[np.float64]
    gamma: NDArray[np.float64]
    epsilon: NDArray[np.float64]

    @property
    def n_configs(self) -> int:
        """K."""
        return int(self.alpha.shape[0])

    def as_kwargs(self) -> dict[str, NDArray[np.float64] | float]:
        """Keyword arguments of ``rlv2.qlearning.replay_sweep``."""
        return {
            "alpha": self.alpha,
            "gamma": self.gamma,
            "epsilon": self.epsilon,
            "epsilon_decay": BENCH_HYPER.epsilon_decay,
            "epsilon_min": BENCH_HYPER.epsilon_min,
        }

    def config(self, k: int) -> Hyper:
        """Configuration k as a single replay's hyperparameters."""
        return Hyper(
            alpha=float(self.alpha[k]),
            gamma=float(self.gamma[k]),
            epsilon=float(self.epsilon[k]),
            epsilon_decay=BENCH_HYPER.epsilon_decay,
            epsilon_min=BENCH_HYPER.epsilon_min,
        )


def make_sweep_grid(n_configs: int, *, seed: int = EVENTS_SEED) -> SweepGrid:
    """K random configurations: α in [0.01, 0.5], γ in [0.8, 0.999], ε in [0.02, 0.3]."""
    rng = np.random.default_rng([seed, n_configs])
    return SweepGrid(
        alpha=rng.uniform(0.01, 0.5, n_configs),
        gamma=rng.uniform(0.8, 0.999, n_configs),
        epsilon=rng.uniform(0.02, 0.3, n_configs),
    )
