"""The full-information learner: hand-computed back-off, the readable and compiled paths equal,
and a prior strength that follows the data (pooled on noise, per state on a real edge)."""

from __future__ import annotations

import numpy as np
import pytest

from rlv2.full_information import (
    FullInformationLearner,
    accumulate,
    coarse_keys,
    full_information_q,
    select_prior_strength,
    shrink,
)
from rlv2.states import Feature, StateSpace

# two features: a 2-category "regime" and a 2-bin "x": states (r, x) = 2 r + x
SPACE = StateSpace("toy", (Feature("regime", categories=("A", "B")), Feature("x", edges=(0.5,))))


def test_coarse_keys_are_the_bins_of_the_chosen_features():
    assert coarse_keys(SPACE, ("regime",)).tolist() == [0, 0, 1, 1]
    assert coarse_keys(SPACE, ("x",)).tolist() == [0, 1, 0, 1]
    with pytest.raises(ValueError, match="not features of toy"):
        coarse_keys(SPACE, ("volatility",))


def test_back_off_by_hand():
    # one action; events: state 0 rewards 1, 3; state 1 reward 5; state 2 reward -2
    states = np.array([0, 0, 1, 2])
    rewards = np.array([[1.0], [3.0], [5.0], [-2.0]])
    sums, counts = accumulate(states, rewards, SPACE.n_states)
    assert sums[:, 0].tolist() == [4.0, 5.0, -2.0, 0.0] and counts.tolist() == [2, 1, 1, 0]
    # κ = 2. global mean 7/4 = 1.75.
    # regime A: (9 + 2 * 1.75) / (3 + 2) = 2.5; regime B: (-2 + 3.5) / (1 + 2) = 0.5
    # state 0: (4 + 2 * 2.5) / 4 = 2.25; state 1: (5 + 5) / 3 = 10/3;
    # state 2: (-2 + 1) / 3 = -1/3; state 3 (unvisited): its regime's 0.5
    q = shrink(sums, counts, SPACE, [("regime",)], 2.0)
    np.testing.assert_allclose(q[:, 0], [2.25, 10 / 3, -1 / 3, 0.5])
    # κ = 0: the sample means, an unvisited state its regime's mean
    np.testing.assert_allclose(
        shrink(sums, counts, SPACE, [("regime",)], 0.0)[:, 0], [2, 5, -2, -2]
    )
    # κ = ∞: the global mean everywhere
    np.testing.assert_allclose(shrink(sums, counts, SPACE, [("regime",)], np.inf)[:, 0], 1.75)


def test_levels_must_refine_each_other():
    sums, counts = np.zeros((4, 1)), np.ones(4)
    with pytest.raises(ValueError, match="refine"):
        shrink(sums, counts, SPACE, [("regime",), ("x",)], 1.0)


def test_the_readable_learner_equals_the_compiled_one():
    rng = np.random.default_rng(1)
    states = rng.integers(0, SPACE.n_states, 300)
    rewards = rng.normal(size=(300, 5))
    learner = FullInformationLearner(SPACE, 5, [("regime",)], prior_strength=7.0)
    for s, row in zip(states, rewards, strict=True):
        learner.update(int(s), row)
    q, counts, kappa = full_information_q(states, rewards, SPACE, [("regime",)], 7.0)
    np.testing.assert_array_equal(q, learner.q_table())
    assert counts.sum() == 300 and kappa == (7.0, 7.0)


def test_on_pure_noise_every_state_plays_the_best_fixed_action():
    rng = np.random.default_rng(2)
    states = rng.integers(0, SPACE.n_states, 4000)
    rewards = rng.normal(size=(4000, 6)) + np.array([0, 0, 0.3, 0, 0, 0])  # action 2 best
    q, _, kappa = full_information_q(states, rewards, SPACE, [("regime",)])
    assert kappa[-1] >= 100  # the states pooled
    assert (q.argmax(axis=1) == 2).all()


def test_a_real_state_dependent_edge_is_learned_per_state():
    rng = np.random.default_rng(3)
    states = rng.integers(0, SPACE.n_states, 4000)
    rewards = rng.normal(size=(4000, 4))
    rewards[np.arange(4000), states] += 1.0  # in state s, action s pays
    q, _, kappa = full_information_q(states, rewards, SPACE, [("regime",)])
    assert kappa[-1] < np.inf  # the states keep their own edge
    assert q.argmax(axis=1).tolist() == [0, 1, 2, 3]


def test_too_few_events_pool_everything():
    assert select_prior_strength(np.array([0]), np.zeros((1, 3)), SPACE) == (np.inf,)
