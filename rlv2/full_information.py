"""A full-information learner with hierarchical back-off (SPEC C, "Learners").

Where the replay knows every action's reward on every event (the counterfactual rows of
the exploring mode), one event teaches the value of all actions of its state, not only
of the one an ε-greedy agent happened to try. This learner estimates, for every state
and action, the expected reward::

    Q(s, a) = (Σ_{i: s_i = s} r_i[a] + κ · P(s, a)) / (n(s) + κ)

a sample mean shrunk toward ``P(s, a)``, the same estimate one level coarser: the mean
over the states that share ``s``'s coarser key (say, its regime), itself shrunk toward
the mean over every event. ``κ`` (``prior_strength``) is how many events of the coarser
level one group's own events must outweigh. By default the data chooses it, by blocked
cross-validation on the training events (every action's reward is known, so any table
can be scored on held-out events): each group of a coarser level takes the κ that
earned most on its own events, the full states the most pooling within one standard
error of the best (``select_prior_strength``). Where states do not really differ, the
learner plays the best fixed action; where they do, each keeps its own. A thin state borrows
strength from its neighbours; an unvisited state (``n(s) = 0``) gets its coarser
level's value instead of zeros, so its greedy action is the best one where the data has
something to say.

Why no bootstrap term: in the replay, the next state does not depend on the action
(the kernels take one next state per event), so ``γ · max Q(s')`` adds the same amount to
every action of a state and cannot change its greedy action. The table holds expected
rewards; the artifact is still a Q-table over SPEC A2's states and A3's actions.

``FullInformationLearner`` is the readable version, one event at a time;
``full_information_q`` the compiled one a pipeline runs (a test proves them equal).
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np
from numpy.typing import ArrayLike, NDArray

from rlv2._intrinsics import prefetch_row
from rlv2.states import StateSpace

PRIOR_STRENGTHS: tuple[float, ...] = (0.0, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, np.inf)
"""The κ a validation split chooses from (∞: every state takes its coarsest value)."""
FOLDS = 5
"""Consecutive blocks of a training window's events that choose κ by cross-validation."""


def coarse_keys(space: StateSpace, features: Sequence[str]) -> NDArray[np.int64]:
    """Each state's key on a subset of its features (mixed radix over those bins)."""
    unknown = sorted(set(features) - set(space.feature_names))
    if unknown:
        raise ValueError(f"back-off features {unknown} are not features of {space.name}")
    bins = space.decode(np.arange(space.n_states))
    key = np.zeros(space.n_states, np.int64)
    for f in space.features:
        if f.name in features:
            key = key * f.n_bins + np.asarray(bins[f.name], np.int64)
    return key


def shrink(
    sums: NDArray[np.float64],
    counts: NDArray[np.float64],
    space: StateSpace,
    levels: Sequence[Sequence[str]],
    prior_strength: float | Sequence[float | NDArray[np.float64]],
) -> NDArray[np.float64]:
    """The back-off estimate of every state from per-state reward sums and event counts.

    ``levels`` are the coarser keys from the coarsest to the finest, each a tuple of
    feature names that contains the one before it; the global mean comes before them,
    the full state after them. ``prior_strength`` is one κ for every level, or one per
    level (``len(levels) + 1``, the coarsest first, the full state last), where a
    coarser level's κ may also be an array with one κ per group of that level.
    """
    kappas = _per_level(prior_strength, len(levels) + 1)
    total = counts.sum()
    parent = (sums.sum(axis=0) / total if total > 0 else np.zeros(sums.shape[1]))[None, :]
    parent_of = np.zeros(space.n_states, np.int64)  # each state's row in ``parent``
    previous: set[str] = set()
    for depth, features in enumerate(levels):
        if not previous <= set(features):
            raise ValueError(f"back-off levels must refine each other: {list(levels)}")
        previous = set(features)
        key = coarse_keys(space, features)
        n_keys = int(key.max()) + 1
        level_sums = np.zeros((n_keys, sums.shape[1]))
        np.add.at(level_sums, key, sums)
        level_counts = np.bincount(key, weights=counts, minlength=n_keys).astype(np.float64)
        key_parent = np.zeros(n_keys, np.int64)
        key_parent[key] = parent_of
        parent = _shrunk_mean(level_sums, level_counts, parent[key_parent], kappas[depth])
        parent_of = key
    return _shrunk_mean(sums, counts, parent[parent_of], kappas[-1])


Kappa = float | NDArray[np.float64]
"""κ of one level: one value, or one per group of the level."""


def _per_level(
    prior_strength: float | Sequence[float | NDArray[np.float64]], n_levels: int
) -> tuple[Kappa, ...]:
    """κ of every level from one κ or one per level, each checked."""
    if isinstance(prior_strength, int | float):
        kappas: tuple[Kappa, ...] = (float(prior_strength),) * n_levels
    else:
        kappas = tuple(k if isinstance(k, np.ndarray) else float(k) for k in prior_strength)
    if len(kappas) != n_levels:
        raise ValueError(f"prior_strength: {len(kappas)} values for {n_levels} levels")
    for k in kappas:
        if not np.all(np.asarray(k) >= 0):
            raise ValueError(f"prior_strength={k} must be >= 0")
    return kappas


def _shrunk_mean(
    sums: NDArray[np.float64],
    counts: NDArray[np.float64],
    prior: NDArray[np.float64],
    prior_strength: Kappa,
) -> NDArray[np.float64]:
    """``(sums + κ · prior) / (counts + κ)`` per row, as ``w · mean + (1 - w) · prior``
    with ``w = counts / (counts + κ)``; a row with no weight at all (or κ = ∞) is its prior."""
    n = counts[:, None]
    kappa = np.broadcast_to(np.asarray(prior_strength, np.float64), counts.shape)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = np.where(np.isinf(kappa) | (n + kappa <= 0), 0.0, n / (n + kappa))
        mean = np.where(n > 0, sums / np.where(n > 0, n, 1.0), 0.0)
    return weight * mean + (1.0 - weight) * np.broadcast_to(prior, sums.shape)


class FullInformationLearner:
    """The readable learner: every event updates all actions of its state (module docstring)."""

    def __init__(
        self,
        state_space: StateSpace,
        n_actions: int,
        levels: Sequence[Sequence[str]] = (),
        prior_strength: float = 30.0,
    ) -> None:
        self.state_space = state_space
        self.levels = tuple(tuple(level) for level in levels)
        self.prior_strength = prior_strength
        self.sums = np.zeros((state_space.n_states, n_actions))
        self.counts = np.zeros(state_space.n_states)

    def update(self, state: int, rewards: ArrayLike) -> None:
        """Learn from one event: the state and the reward every action would have earned."""
        self.sums[state] += np.asarray(rewards, dtype=np.float64)
        self.counts[state] += 1.0

    def q_table(self) -> NDArray[np.float64]:
        """The back-off estimate of every state and action."""
        return shrink(self.sums, self.counts, self.state_space, self.levels, self.prior_strength)


# The loop streams the (N, A) rewards once: hinting each row a few events ahead keeps the
# memory busy (~10% faster at 1M events, bench stage 6). Each cell is still summed in
# event order, one addition per event, so the sums equal the readable learner's.
_PREFETCH_ROWS_AHEAD = 8


@numba.njit(cache=True, nogil=True)
def _accumulate(
    states: NDArray[np.int64],
    rewards: NDArray[np.float64],
    sums: NDArray[np.float64],
    counts: NDArray[np.float64],
) -> None:
    n_actions = rewards.shape[1]
    n = states.shape[0]
    for i in range(n):
        if i + _PREFETCH_ROWS_AHEAD < n:
            prefetch_row(rewards, i + _PREFETCH_ROWS_AHEAD)
        s = states[i]
        counts[s] += 1.0
        for a in range(n_actions):
            sums[s, a] += rewards[i, a]


def accumulate(
    states: ArrayLike, rewards: ArrayLike, n_states: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per-state sums of the reward rows and event counts, compiled (N·A updates)."""
    s = np.ascontiguousarray(states, dtype=np.int64)
    r = np.ascontiguousarray(rewards, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] != s.shape[0]:
        raise ValueError(f"rewards must be (N, A) with N = {s.shape[0]} events, got {r.shape}")
    if s.size and (s.min() < 0 or s.max() >= n_states):
        raise ValueError(f"states must lie in [0, {n_states})")
    sums = np.zeros((n_states, r.shape[1]))
    counts = np.zeros(n_states)
    _accumulate(s, r, sums, counts)
    return sums, counts


def _best(earned: dict[float, NDArray[np.float64]], rows: NDArray[np.int64]) -> float:
    """The κ that earned most on ``rows`` (ties: the larger)."""
    return max(earned, key=lambda k: (float(earned[k][rows].mean()), k))


def _one_se_largest(earned: dict[float, NDArray[np.float64]]) -> float:
    """The largest κ whose earnings lie within one standard error of the best κ's (the
    error of their paired per-event difference)."""
    means = {k: float(e.mean()) for k, e in earned.items()}
    best = earned[max(means, key=means.__getitem__)]
    m = len(best)
    return max(
        k
        for k, e in earned.items()
        if float((best - e).mean()) <= float((best - e).std()) / np.sqrt(m)
    )


def select_prior_strength(
    states: NDArray[np.int64],
    rewards: NDArray[np.float64],
    space: StateSpace,
    levels: Sequence[Sequence[str]] = (),
    folds: int = FOLDS,
) -> tuple[Kappa, ...]:
    """κ per level, chosen by blocked cross-validation and the one-standard-error rule.

    The events are cut into ``folds`` consecutive blocks; each block is scored, by its
    known rewards of every action, with the table fitted on the other blocks, so every
    event scores every κ of ``PRIOR_STRENGTHS`` once. Level by level from the coarsest,
    the finer levels pooled: each group of a coarser level (say, each regime: a few
    groups with many events each) takes the κ that earned most on its own events; the
    full states (many, thin) then take one κ, the most pooling whose greedy policy earns
    within one standard error of the best κ's (the error of their paired per-event
    difference: the one-standard-error rule). Too few events: ∞.
    """
    n_levels = len(levels) + 1
    n = len(states)
    if n < 2 * folds:
        return (float(np.inf),) * n_levels
    blocks = np.array_split(np.arange(n), folds)
    parts = [accumulate(states[b], rewards[b], space.n_states) for b in blocks]
    total_sums = sum(p[0] for p in parts)
    total_counts = sum(p[1] for p in parts)

    def cross_validated(kappas: tuple[Kappa, ...]) -> NDArray[np.float64]:
        earned = np.empty(n)
        for block, (sums, counts) in zip(blocks, parts, strict=True):
            q = shrink(total_sums - sums, total_counts - counts, space, levels, kappas)
            held = states[block]
            earned[block] = rewards[block][np.arange(len(block)), q[held].argmax(axis=1)]
        return earned

    chosen: list[Kappa] = [float(np.inf)] * n_levels
    for depth, features in enumerate(levels):
        key = coarse_keys(space, features)[states]
        earned = {}
        for kappa in PRIOR_STRENGTHS:
            chosen[depth] = kappa
            earned[kappa] = cross_validated(tuple(chosen))
        per_group = np.full(int(coarse_keys(space, features).max()) + 1, np.inf)
        for group in np.unique(key):
            per_group[group] = _best(earned, np.flatnonzero(key == group))
        chosen[depth] = per_group
    finest = {}
    for kappa in PRIOR_STRENGTHS:
        chosen[-1] = kappa
        finest[kappa] = cross_validated(tuple(chosen))
    chosen[-1] = _one_se_largest(finest)
    return tuple(chosen)


def full_information_q(
    states: ArrayLike,
    rewards: ArrayLike,
    space: StateSpace,
    levels: Sequence[Sequence[str]] = (),
    prior_strength: float | Sequence[Kappa] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64], tuple[Kappa, ...]]:
    """The full-information Q-table of some events, the events behind each state, and κ
    per level (the coarsest first).

    ``prior_strength`` None chooses κ by ``select_prior_strength``.
    """
    s = np.ascontiguousarray(states, dtype=np.int64)
    r = np.ascontiguousarray(rewards, dtype=np.float64)
    if prior_strength is None:
        kappas = select_prior_strength(s, r, space, levels)
    else:
        kappas = _per_level(prior_strength, len(levels) + 1)
    sums, counts = accumulate(s, r, space.n_states)
    return shrink(sums, counts, space, levels, kappas), counts, kappas
