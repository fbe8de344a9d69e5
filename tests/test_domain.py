"""The agents' table and the vocabulary enums: one row per agent, clear errors for typos."""

from __future__ import annotations

import numpy as np
import pytest

from rlv2.actions import meta_space, sizing_space
from rlv2.domain import (
    AGENT_SPECS,
    Agent,
    EpisodeGrouping,
    Policy,
    ReplayMode,
    agent_spec,
    parse_enum,
    parse_episode,
)
from rlv2.replay import ReplayConfig
from rlv2.states import (
    META_STATE_SPACE,
    SIZING_STATE_SPACE,
    encode_state,
    meta_state_features,
    meta_state_vector,
    sizing_state_features,
    sizing_state_vector,
)


def test_the_table_holds_each_agent_once_with_its_spaces_and_names():
    assert list(AGENT_SPECS) == [Agent.META_STRATEGY, Agent.POSITION_SIZING]
    meta, sizing = AGENT_SPECS.values()
    assert (meta.n_actions, sizing.n_actions) == (48, 56)
    assert (meta.state_space.n_states, sizing.state_space.n_states) == (972, 243)
    assert meta.action_space is meta_space and sizing.action_space is sizing_space
    assert (meta.model_name, sizing.model_name) == ("rlv2-meta-strategy", "rlv2-position-sizing")
    assert (meta.seed_offset, sizing.seed_offset) == (0, 1)
    assert (meta.reward_metric, sizing.reward_metric) == ("meta_reward", "sizing_reward")


def test_agent_names_read_as_plain_strings():
    assert Agent.META_STRATEGY == "meta_strategy"
    assert f"{Agent.POSITION_SIZING}" == "position_sizing"
    assert agent_spec("position_sizing").agent is Agent.POSITION_SIZING


def test_a_misspelt_agent_is_an_error_not_the_other_agent():
    with pytest.raises(ValueError, match="agent='meta_strat'.*meta_strategy, position_sizing"):
        agent_spec("meta_strat")
    with pytest.raises(ValueError, match="agent="):
        ReplayConfig().hyperparameters("sizing")  # type: ignore[arg-type]


def test_seeds_differ_by_the_table_offsets():
    config = ReplayConfig(seed=7)
    assert config.hyperparameters(Agent.META_STRATEGY)["seed"] == 7
    assert config.hyperparameters(Agent.POSITION_SIZING)["seed"] == 8
    assert config.state_space(Agent.POSITION_SIZING) is config.sizing_space


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("position", (EpisodeGrouping.POSITION, 1)),
        ("day", (EpisodeGrouping.DAY, 1)),
        ("trades:25", (EpisodeGrouping.TRADES, 25)),
    ],
)
def test_episode_windows_parse(text, expected):
    assert parse_episode(text) == expected


@pytest.mark.parametrize("text", ["trades", "trades:0", "trades:x", "day:2", "week", ""])
def test_bad_episode_windows_are_refused_when_configured(text):
    with pytest.raises(ValueError, match="episode="):
        ReplayConfig(episode=text)


def test_modes_and_policies_are_enums_with_named_errors():
    assert parse_enum(ReplayMode, "explore", "mode") is ReplayMode.EXPLORE
    assert parse_enum(Policy, "greedy", "policy") is Policy.GREEDY
    with pytest.raises(ValueError, match="mode='explor': expected one of logged, explore"):
        parse_enum(ReplayMode, "explor", "mode")


def test_compiled_state_vectors_encode_as_the_named_features():
    rng = np.random.default_rng(3)
    meta_out, sizing_out = np.empty(6), np.empty(5)
    meta_arrays = META_STATE_SPACE.kernel_arrays
    sizing_arrays = SIZING_STATE_SPACE.kernel_arrays
    for _ in range(200):
        m = (int(rng.integers(4)), *rng.uniform([0, -1, 0, 0, 0.5], [0.05, 1, 1, 1, 1]))
        s = tuple(rng.uniform([0, 0, 0, 0, -0.001], [1, 1.5, 1, 0.05, 0.001]))
        assert encode_state(meta_state_vector(meta_out, *m), *meta_arrays) == (
            META_STATE_SPACE.encode(meta_state_features(*m))
        )
        assert encode_state(sizing_state_vector(sizing_out, *s), *sizing_arrays) == (
            SIZING_STATE_SPACE.encode(sizing_state_features(*s))
        )
    assert list(meta_state_features(*range(6))) == list(META_STATE_SPACE.feature_names)
    assert list(sizing_state_features(*range(5))) == list(SIZING_STATE_SPACE.feature_names)
