"""rlv2.config: settings read off the dataclasses, TOML files written and read back."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from enum import StrEnum

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlv2 import config
from rlv2.config import ConfigError, dumps, from_data, settings, to_data, toml_value
from rlv2.history import FeatureConfig
from rlv2.pipeline import TrainConfig
from rlv2.replay import ReplayConfig
from rlv2.rewards import MetaRewardWeights, SizingRewardWeights
from rlv2.states import RegimeRule, meta_state_space, sizing_state_space
from rlv2.sweeps import SweepConfig


class Colour(StrEnum):
    """A stand-in for the enums the configuration will use for modes and policies."""

    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True)
class Inner:
    """A section of the stand-in configuration."""

    colour: Colour = Colour.RED
    """An enum, set by its value."""
    label: str | None = None
    """An optional string."""


@dataclass(frozen=True)
class Outer:
    """A stand-in configuration with the kinds of field the real ones do not have yet."""

    inner: Inner = field(default_factory=Inner)
    """A section."""
    counts: tuple[int, ...] = (1, 2)
    """A list of integers."""
    on: bool = True
    """A flag."""


def roundtrip(value, cls=TrainConfig, root=()):
    data = tomllib.loads(dumps(value, root=root))
    for name in root:
        data = data[name]
    return from_data(cls, data)


@pytest.mark.parametrize("cls", [TrainConfig, SweepConfig])
def test_every_setting_has_a_docstring_and_a_unique_option(cls):
    found = settings(cls)
    assert all(s.doc for s in found), [s.key for s in found if not s.doc]
    flags = [s.flag for s in found if s.on_command_line]
    assert len(flags) == len(set(flags))


def test_the_settings_are_the_dataclass_fields_with_their_defaults():
    keys = {s.key: s for s in settings(TrainConfig)}
    assert keys["replay.alpha"].default == ReplayConfig().alpha
    assert keys["replay.alpha"].doc == "Learning rate α."
    assert keys["features.lookback_bars"].default == FeatureConfig().lookback_bars
    assert keys["features.regime_rule"].kind is RegimeRule  # numbers: one option
    assert keys["replay.meta_space"].on_command_line is False  # bins: a file only
    assert keys["epochs"].flag == "--epochs" and keys["replay.epsilon_min"].flag == "--epsilon-min"


def test_default_and_changed_configurations_survive_toml():
    assert roundtrip(TrainConfig()) == TrainConfig()
    changed = TrainConfig(
        replay=ReplayConfig(
            alpha=0.05,
            seed=9,
            meta_weights=MetaRewardWeights(0.3, 0.25, 0.1),
            meta_space=meta_state_space({"volatility": (0.005, 0.02, 0.05)}),
            sizing_space=sizing_state_space({"equity_curve_slope": (-1e-05, 1e-05)}),
            episode="trades:5",
        ),
        features=FeatureConfig(lookback_bars=30, regime_rule=RegimeRule(breakout_k=2.5)),
        mode="logged",
        learner="q-learning",
        epochs=7,
        metric="pnl_pct",
    )
    assert roundtrip(changed) == changed
    sweep = SweepConfig(
        method="tpe",
        study="team",
        alpha=(0.01, 0.3),
        sizing_weights=(SizingRewardWeights(0.4, 0.1), SizingRewardWeights(0.2, 0.3)),
    )
    assert roundtrip(sweep, SweepConfig, ("sweep",)) == sweep
    assert roundtrip(SweepConfig(), SweepConfig, ("sweep",)) == SweepConfig()


def test_a_partial_file_changes_only_what_it_names():
    data = {
        "epochs": 3,
        "replay": {"alpha": 0.05, "meta_weights": {"sharpe": 0.3}},
        "features": {"regime_rule": {"reversion_z": 2}},
    }
    loaded = from_data(TrainConfig, data)
    assert loaded.epochs == 3 and loaded.replay.alpha == 0.05
    assert loaded.replay.meta_weights == MetaRewardWeights(sharpe=0.3)
    assert loaded.features.regime_rule == RegimeRule(reversion_z=2.0)
    assert loaded.replay.gamma == ReplayConfig().gamma
    assert loaded.features.lookback_bars == FeatureConfig().lookback_bars


def test_state_bins_are_written_as_edges_by_feature():
    data = {"replay": {"meta_space": {"volatility": [0.005, 0.02]}}}
    loaded = from_data(TrainConfig, data)
    assert loaded.replay.meta_space == meta_state_space({"volatility": (0.005, 0.02)})
    assert loaded.replay.meta_space.n_states == 972
    assert to_data(loaded)["replay"]["meta_space"]["volatility"] == [0.005, 0.02]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"epoch": 3}, "unknown setting 'epoch': the top level has .*confidence, .*epochs"),
        ({"replay": {"alfa": 0.1}}, r"unknown setting 'replay.alfa': \[replay\] has alpha"),
        ({"replay": {"alpha": "0.1"}}, "replay.alpha: expected a number, got '0.1'"),
        ({"replay": {"alpha": True}}, "replay.alpha: expected a number"),
        ({"epochs": 2.5}, "epochs: expected an integer, got 2.5"),
        ({"mode": 1}, "mode: expected a string"),
        ({"epochs": 0}, "epochs=0 must be >= 1"),
        ({"metric": "sharpe"}, "metric='sharpe': expected one of"),
        ({"replay": {"meta_weights": {"risk": 1}}}, r"meta_weights: unknown keys \['risk'\]"),
        ({"replay": {"meta_space": {"regime": [1]}}}, "unknown features"),
        ({"replay": {"meta_space": {"volatility": 0.1}}}, "expected a list of bin edges"),
        ({"replay": {"meta_space": {"volatility": [0.2, 0.1]}}}, "edges must increase"),
        ({"replay": 0.1}, "unknown setting 'replay'"),
    ],
)
def test_a_bad_file_is_refused_naming_the_file_and_the_key(data, message):
    with pytest.raises(ConfigError, match=message) as refused:
        from_data(TrainConfig, data, source="team.toml")
    assert str(refused.value).startswith("team.toml: ")


def test_enums_optional_values_lists_and_flags():
    keys = {s.key: s for s in settings(Outer)}
    assert keys["inner.colour"].parse("blue") is Colour.BLUE
    assert keys["inner.colour"].parse("BLUE") is Colour.BLUE
    with pytest.raises(ConfigError, match="one of red, blue"):
        keys["inner.colour"].parse("green")
    assert keys["counts"].parse("3,4") == [3, 4]
    assert keys["on"].parse("false") is False
    value = Outer(inner=Inner(Colour.BLUE, "x"), counts=(5,), on=False)
    assert roundtrip(value, Outer) == value
    assert "label" not in dumps(Outer())  # None: left out of the file
    assert from_data(Outer, {"inner": {"colour": "blue"}}).inner.colour is Colour.BLUE


def test_the_printed_file_documents_each_key():
    text = dumps(TrainConfig(), header="team settings")
    lines = text.splitlines()
    assert lines[0] == "# team settings"
    assert lines[lines.index("alpha = 0.01") - 1] == "# Learning rate α."
    assert "[replay.meta_space]" in lines and "[features.regime_rule]" in lines
    assert lines.index("epochs = 20") < lines.index("[replay]")  # keys before tables


def test_read_toml_names_the_file_and_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("epochs = 3\nalpha = \n")
    with pytest.raises(ConfigError, match=r"bad.toml: .*line 2"):
        config.read_toml(path)
    with pytest.raises(ConfigError, match="missing.toml"):
        config.read_toml(tmp_path / "missing.toml")


@given(
    st.one_of(
        st.floats(allow_nan=False),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.text(),
        st.booleans(),
        st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=4),
    )
)
def test_toml_values_read_back_equal(value):
    assert tomllib.loads(f"x = {toml_value(value)}")["x"] == value
