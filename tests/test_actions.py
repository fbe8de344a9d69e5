"""SPEC A3: the two action spaces, their codes and decoding."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlv2.actions import (
    MetaAction,
    SizingAction,
    meta_action_parts,
    meta_space,
    sizing_action_parts,
    sizing_space,
)
from rlv2.domain import LEVERAGES, SIZE_MULTIPLIERS, Model, Strategy, WeightAction


def test_sizes():
    assert meta_space.n == 48
    assert sizing_space.n == 56


def test_stable_codes_hand_values():
    # strategy * 12 + model * 3 + weight
    assert meta_space.encode(Strategy.TREND, Model.XGB, WeightAction.WEIGHT_UP) == 0
    assert meta_space.encode(Strategy.BREAKOUT, Model.NHITS, WeightAction.WEIGHT_HOLD) == 32
    assert meta_space.decode(47) == MetaAction(
        Strategy.MEAN_REVERSION, Model.PATCHTST, WeightAction.WEIGHT_HOLD
    )
    # size_index * 7 + leverage_index
    assert sizing_space.encode(0.2, 1) == 0
    assert sizing_space.encode(1.3, 5) == 5 * 7 + 4
    assert sizing_space.decode(55) == SizingAction(1.8, 7)
    assert meta_space.label(32) == "BREAKOUT/NHITS/WEIGHT_HOLD"
    assert sizing_space.label(39) == "size=1.3x/lev=5"


@pytest.mark.parametrize("code", range(48))
def test_meta_round_trip_all_codes(code):
    assert meta_space.encode(*meta_space.decode(code)) == code


@pytest.mark.parametrize("code", range(56))
def test_sizing_round_trip_all_codes(code):
    assert sizing_space.encode(*sizing_space.decode(code)) == code


def test_vectorised_round_trip():
    codes = np.arange(48)
    np.testing.assert_array_equal(meta_space.encode(*meta_space.decode_arrays(codes)), codes)
    codes = np.arange(56)
    np.testing.assert_array_equal(sizing_space.encode(*sizing_space.decode_arrays(codes)), codes)
    assert len(set(meta_space.labels())) == 48 and len(set(sizing_space.labels())) == 56


def test_invalid_parts_raise():
    with pytest.raises(ValueError, match="leverage"):
        sizing_space.encode(1.0, 8)
    with pytest.raises(ValueError, match="size_multiplier"):
        sizing_space.encode(1.1, 2)
    with pytest.raises(ValueError, match="out of range"):
        meta_space.decode(48)
    with pytest.raises(ValueError, match="model"):
        meta_space.encode(0, 4, 0)


@given(st.sampled_from(SIZE_MULTIPLIERS), st.sampled_from(LEVERAGES))
def test_sizing_parts_round_trip(size, leverage):
    assert sizing_space.decode(sizing_space.encode(size, leverage)) == (size, leverage)


def test_epsilon_greedy_explores_and_exploits():
    from rlv2.actions import epsilon_greedy, make_rng

    q_row = np.zeros(48)
    q_row[17] = 1.0
    rng = make_rng(3)
    assert all(epsilon_greedy(q_row, 0.0, rng) == 17 for _ in range(50))
    picks = [int(epsilon_greedy(q_row, 1.0, rng)) for _ in range(2000)]
    assert len(set(picks)) == 48  # ε = 1 explores uniformly
    assert abs(picks.count(17) / 2000 - 1 / 48) < 0.02


def test_compiled_decoding_is_the_spaces_decoding():
    for code in range(meta_space.n):
        assert meta_action_parts(code) == tuple(int(x) for x in meta_space.decode(code))
    # code 47: MEAN_REVERSION (3), PATCHTST (3), WEIGHT_HOLD (2)
    assert meta_action_parts(47) == (3, 3, 2)
    # code 55: size 1.8 (index 7), leverage 7 (index 6)
    assert sizing_action_parts(55) == (7, 6)
