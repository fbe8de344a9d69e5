"""SPEC A1: every reward formula against hand-computed values, every branch boundary."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlv2.domain import Regime
from rlv2.rewards import (
    MetaRewardWeights,
    SizingRewardWeights,
    meta_strategy_reward,
    position_sizing_reward,
    regime_alignment,
    risk_penalty,
    sharpe_signal,
    volatility_adjustment,
)

finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False)


def test_sharpe_signal_hand_value():
    # mean 0.02, population std 0.01 -> tanh(2)
    assert sharpe_signal([0.01, 0.03]) == pytest.approx(math.tanh(2.0), abs=1e-12)
    # risk-free 0.01: (0.02 - 0.01) / 0.01 = 1 -> tanh(1)
    assert sharpe_signal([0.01, 0.03], risk_free_rate=0.01) == pytest.approx(math.tanh(1.0))
    # mean 0, std 0.1 (population) -> 0; negative mean -> negative signal
    assert sharpe_signal([0.1, -0.1]) == pytest.approx(0.0)
    assert sharpe_signal([-0.01, -0.03]) == pytest.approx(-math.tanh(2.0))


def test_sharpe_signal_neutral_cases():
    assert sharpe_signal([]) == 0.0
    assert sharpe_signal([0.05]) == 0.0
    assert sharpe_signal([0.02, 0.02, 0.02]) == 0.0  # zero spread


def test_sharpe_signal_batches_rows():
    out = sharpe_signal(np.array([[0.01, 0.03], [0.02, 0.02]]))
    np.testing.assert_allclose(out, [math.tanh(2.0), 0.0])


@given(st.lists(finite, min_size=0, max_size=40))
def test_sharpe_signal_in_unit_interval(returns):
    value = sharpe_signal(returns)
    assert -1.0 <= value <= 1.0 and not math.isnan(value)


def test_regime_alignment_hand_values():
    assert regime_alignment(Regime.TREND, Regime.TREND, 0.8) == pytest.approx(0.8)
    assert regime_alignment("TREND", "RANGE", 0.8) == pytest.approx(-0.4)
    np.testing.assert_allclose(
        regime_alignment([0, 1, 2], [0, 2, 2], [1.0, 1.0, 0.5]), [1.0, -0.5, 0.5]
    )


def test_regime_alignment_rejects_unknown_regime_and_bad_confidence():
    with pytest.raises(ValueError, match="predicted_regime"):
        regime_alignment("SIDEWAYS", "TREND", 0.5)
    with pytest.raises(ValueError, match="confidence"):
        regime_alignment("TREND", "TREND", 1.5)


@pytest.mark.parametrize(
    ("leverage", "exposure", "expected"),
    [
        (5, 0.5, 0.0),  # both exactly at the threshold: no penalty
        (1, 0.0, 0.0),
        (6, 0.5, 0.3),  # (6 - 5) * 0.3
        (7, 0.5, 0.6),
        (5, 0.8, 0.6),  # (0.8 - 0.5) * 2.0
        (7, 0.8, 1.2),  # 0.6 + 0.6
        (5, 3.0, 5.0),  # exactly at the cap: (3.0 - 0.5) * 2 = 5.0
        (5, 3.5, 5.0),  # 6.0 capped at 5.0
        (7, 3.0, 5.0),  # 0.6 + 5.0 = 5.6 capped
    ],
)
def test_risk_penalty_branches(leverage, exposure, expected):
    assert risk_penalty(leverage, exposure) == pytest.approx(expected)


def test_risk_penalty_just_above_thresholds():
    assert risk_penalty(5.1, 0.5) == pytest.approx(0.03)
    assert risk_penalty(5, 0.6) == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("vol", "expected"),
    [
        (0.0, -0.2),
        (0.0099, -0.2),  # too low
        (0.01, 0.5),  # lower boundary is optimal
        (0.02, 0.5),
        (0.03, 0.5),  # upper boundary is optimal
        (0.045, -0.25),  # -0.5 * 0.015 / 0.03
        (0.06, -0.5),
        (0.09, -1.0),
    ],
)
def test_volatility_adjustment_branches(vol, expected):
    assert volatility_adjustment(vol) == pytest.approx(expected)


def test_meta_strategy_reward_hand_value():
    # 2.5 - 0.5*1.0 + 0.2*0.5 + 0.15*0.8 = 2.5 - 0.5 + 0.1 + 0.12 = 2.22
    assert meta_strategy_reward(2.5, 1.0, 0.5, 0.8) == pytest.approx(2.22)
    w = MetaRewardWeights(drawdown=1.0, sharpe=0.0, regime=1.0)
    assert meta_strategy_reward(2.5, 1.0, 0.5, 0.8, weights=w) == pytest.approx(2.3)


def test_position_sizing_reward_hand_value():
    # 2.5 - 0.4*1.2 + 0.1*0.5 = 2.5 - 0.48 + 0.05 = 2.07
    assert position_sizing_reward(2.5, 1.2, 0.5) == pytest.approx(2.07)
    w = SizingRewardWeights(risk=1.0, volatility=1.0)
    assert position_sizing_reward(2.5, 1.2, 0.5, weights=w) == pytest.approx(1.8)


def test_rewards_vectorise():
    out = position_sizing_reward(np.array([1.0, -1.0]), np.array([0.0, 1.0]), 0.5)
    np.testing.assert_allclose(out, [1.05, -1.35])
    assert isinstance(meta_strategy_reward(1.0, 0.0, 0.0, 0.0), float)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_inputs_raise_naming_the_parameter(bad):
    with pytest.raises(ValueError, match="pnl_pct"):
        meta_strategy_reward(bad, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="volatility"):
        volatility_adjustment(bad)
    with pytest.raises(ValueError, match="leverage"):
        risk_penalty(bad, 0.1)
    with pytest.raises(ValueError, match="returns"):
        sharpe_signal([0.1, bad])


def test_negative_volatility_or_exposure_raise():
    with pytest.raises(ValueError, match="volatility"):
        volatility_adjustment(-0.01)
    with pytest.raises(ValueError, match="exposure"):
        risk_penalty(2, -0.1)


@given(st.floats(0.0, 100.0), st.floats(0.0, 50.0))
def test_risk_penalty_bounded(leverage, exposure):
    value = risk_penalty(max(leverage, 1e-9), exposure)
    assert 0.0 <= value <= 5.0


def test_regime_alignment_takes_code_arrays_and_checks_their_range():
    codes = np.array([[0, 3], [2, 1]])
    np.testing.assert_allclose(
        regime_alignment(codes, np.array([[0, 0], [2, 2]]), 0.5), [[0.5, -0.25], [0.5, -0.25]]
    )
    with pytest.raises(ValueError, match="actual_regime"):
        regime_alignment(codes, np.array([[0, 4], [2, 2]]), 0.5)
