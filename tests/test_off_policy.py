"""The SNIPS second opinion: hand-computed values, and agreement with the simulated replay
on planted histories, whose per-agent propensities are the behaviour's own."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from rlv2 import off_policy, pipeline, store
from rlv2.actions import meta_space, sizing_space
from rlv2.demo import build_planted_database
from rlv2.domain import Model, Strategy, WeightAction
from rlv2.off_policy import SnipsEstimate, disagrees, second_opinion, snips
from rlv2.planted import PlantedConfig
from rlv2.replay import ReplayConfig, evaluate_policies
from rlv2.states import META_STATE_SPACE, SIZING_STATE_SPACE

CONFIG = ReplayConfig()
PLANTED = PlantedConfig()
"""A uniform behaviour over the 48 meta actions and the 24 sizing actions of leverage 1..3."""


def test_snips_by_hand():
    # row 4 has no propensity; rows 0 and 2 take the target's action, with weights 2 and 4
    estimate = snips(
        rewards=[1.0, 2.0, 3.0, 4.0, 5.0],
        logged_actions=[0, 1, 0, 0, 2],
        target_actions=[0, 0, 0, 1, 2],
        propensities=[0.5, 0.25, 0.25, 0.5, math.nan],
    )
    assert (estimate.n, estimate.matched) == (4, 2)
    assert estimate.value == pytest.approx((2 * 1.0 + 4 * 3.0) / 6)  # 7/3
    # sqrt((2 * (1 - 7/3))² + (4 * (3 - 7/3))²) / 6 = sqrt(128/9) / 6
    assert estimate.se == pytest.approx(4 * math.sqrt(2) / 9)
    assert estimate.ess == pytest.approx(6**2 / (2**2 + 4**2))  # 1.8


def test_snips_of_the_behaviour_itself_is_the_mean_with_its_standard_error():
    rewards = np.asarray([1.0, -2.0, 0.5, 3.0])
    estimate = snips(rewards, [3, 1, 4, 1], [3, 1, 4, 1], [0.2] * 4)
    assert estimate.value == pytest.approx(rewards.mean())
    assert estimate.se == pytest.approx(rewards.std() / 2)  # population std / sqrt(n)
    assert estimate.ess == pytest.approx(4.0)


def test_snips_with_one_or_no_match():
    one = snips([1.0, 7.0], [0, 1], [1, 1], [0.5, 0.5])
    assert (one.value, one.matched, one.ess) == (7.0, 1, 1.0) and math.isnan(one.se)
    none = snips([1.0, 7.0], [0, 1], [2, 2], [0.5, 0.5])
    assert math.isnan(none.value) and (none.matched, none.ess) == (0, 0.0)
    assert not disagrees(5.0, one) and not disagrees(5.0, none)  # no error: no alarm


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, math.inf])
def test_snips_refuses_a_propensity_outside_the_unit_interval(bad):
    with pytest.raises(ValueError, match=r"propensities\[1\] = .*\(0, 1\]"):
        snips([1.0, 2.0], [0, 0], [0, 0], [0.5, bad])
    with pytest.raises(ValueError, match="target_actions has 1 entries, rewards 2"):
        snips([1.0, 2.0], [0, 0], [0], [0.5, 0.5])


def test_the_alarm_is_beyond_two_standard_errors():
    estimate = SnipsEstimate(value=1.0, se=0.5, ess=10.0, n=100, matched=12)
    assert not disagrees(1.99, estimate) and not disagrees(0.01, estimate)
    assert disagrees(2.01, estimate) and disagrees(-0.01, estimate)
    assert disagrees(1.6, estimate, threshold=1.0)


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> pipeline.WindowData:
    """The whole default planted history (3,324 trades) as one window."""
    path: Path = tmp_path_factory.mktemp("planted") / "planted.duckdb"
    build_planted_database(path, PLANTED)
    with store.connect(path, read_only=True) as con:
        return pipeline.load_window(con)


def fixed_policy(n_states: int, n_actions: int, action: int) -> np.ndarray:
    """A Q-table whose greedy action is ``action`` in every state."""
    q = np.zeros((n_states, n_actions))
    q[:, action] = 1.0
    return q


def test_snips_of_a_fixed_policy_matches_its_simulated_value(planted):
    policies = {
        "meta_strategy": fixed_policy(
            META_STATE_SPACE.n_states,
            meta_space.n,
            int(meta_space.encode(Strategy.RANGE, Model.NHITS, WeightAction.WEIGHT_HOLD)),
        ),
        "position_sizing": fixed_policy(
            SIZING_STATE_SPACE.n_states, sizing_space.n, int(sizing_space.encode(1.0, 2))
        ),
    }
    for agent, q in policies.items():
        opinion = second_opinion(agent, q, planted.inputs, planted.transitions, CONFIG)
        assert opinion is not None
        estimate = opinion.estimate
        assert estimate.n == planted.n_trades and opinion.coverage == 1.0
        # a uniform behaviour: each matching trade weighs the same, about 1/48 or 1/24 match
        share = 1 / 48 if agent == "meta_strategy" else 1 / 24
        assert estimate.matched == pytest.approx(share * estimate.n, rel=0.35)
        assert estimate.ess == pytest.approx(estimate.matched)
        assert abs(opinion.simulated - estimate.value) <= 2 * estimate.se, agent
        assert not opinion.disagrees
        figures = opinion.figures()
        assert figures["ips_disagrees"] is False and figures["ips.snips"] == estimate.value


@pytest.mark.parametrize(
    ("agent", "n_states", "actions"),
    [
        ("meta_strategy", META_STATE_SPACE.n_states, np.arange(meta_space.n)),
        ("position_sizing", SIZING_STATE_SPACE.n_states, np.flatnonzero(PLANTED.sizing_actions())),
    ],
)
def test_over_every_fixed_policy_the_differences_are_sampling_error(
    planted, agent, n_states, actions
):
    """Standardised differences (simulated - SNIPS) / SE look like draws of N(0, 1)."""
    n_actions = meta_space.n if agent == "meta_strategy" else sizing_space.n
    z = []
    for action in actions:
        q = fixed_policy(n_states, n_actions, int(action))
        opinion = second_opinion(agent, q, planted.inputs, planted.transitions, CONFIG)
        assert opinion is not None
        z.append((opinion.simulated - opinion.estimate.value) / opinion.estimate.se)
    z = np.asarray(z)
    assert abs(z.mean()) < 3 / np.sqrt(z.size)
    assert 0.6 < z.std() < 1.4
    assert (np.abs(z) > 2).mean() <= 0.15 and np.abs(z).max() < 3.5


def test_the_comparison_holds_the_account_as_logged(planted):
    """Why ``simulated`` is the counterfactual rewards' value, not a full simulation's.

    The sizing reward's risk penalty reads the exposure of every open position. A logged
    trade's exposure holds the behaviour's sizes of the others, so SNIPS of a small-size
    policy carries their penalty; a full simulation gives every position the small size
    and no penalty. SNIPS, a per-trade estimate, cannot see that effect of a policy on the
    other trades: compared with the full simulation, it would raise the alarm for every
    policy that sizes unlike the behaviour.
    """
    q = fixed_policy(SIZING_STATE_SPACE.n_states, sizing_space.n, int(sizing_space.encode(0.2, 1)))
    opinion = second_opinion("position_sizing", q, planted.inputs, planted.transitions, CONFIG)
    assert opinion is not None and not opinion.disagrees
    full = evaluate_policies(planted.inputs, CONFIG, None, q).sizing_reward.mean()
    assert abs(full - opinion.estimate.value) > 5 * opinion.estimate.se


def test_no_opinion_without_per_agent_propensities(demo_db):
    with store.connect(demo_db, read_only=True) as con:
        window = pipeline.load_window(con)
    assert np.isnan(window.transitions.meta_action_prob).all()  # the demo logs the joint only
    q = np.ones((META_STATE_SPACE.n_states, meta_space.n))
    assert second_opinion("meta_strategy", q, window.inputs, window.transitions, CONFIG) is None


def test_an_opinion_covers_the_trades_that_logged_a_propensity(tmp_path):
    path = tmp_path / "partly.duckdb"
    build_planted_database(path, PlantedConfig(max_decisions_per_symbol=400))
    with store.connect(path) as con:
        con.execute("UPDATE trades SET sizing_action_prob = NULL WHERE trade_id::BIGINT % 3 = 0")
        window = pipeline.load_window(con)
    rows = window.inputs.rows
    logged = ~np.isnan(window.transitions.sizing_action_prob[rows])
    assert 0 < logged.sum() < rows.size
    q = fixed_policy(SIZING_STATE_SPACE.n_states, sizing_space.n, int(sizing_space.encode(1.0, 2)))
    opinion = off_policy.second_opinion(
        "position_sizing", q, window.inputs, window.transitions, CONFIG
    )
    assert opinion is not None
    assert opinion.estimate.n == logged.sum() and opinion.coverage == pytest.approx(logged.mean())
