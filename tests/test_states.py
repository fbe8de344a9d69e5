"""SPEC A2 and C: state features against hand-computed values, the regime rule, the bins."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlv2.domain import Regime
from rlv2.states import (
    META_STATE_SPACE,
    SIZING_STATE_SPACE,
    Feature,
    RegimeRule,
    account_health,
    efficiency_ratio,
    equity_curve_slope,
    label_regime,
    market_pressure,
    meta_state_space,
    sizing_state_space,
    trailing_winrate,
    volatility,
)

prices_st = st.lists(st.floats(0.01, 1e6, allow_nan=False), min_size=0, max_size=60)


def test_trailing_winrate_hand_values():
    assert trailing_winrate([1.0, -1.0, 2.0, 0.0]) == 0.5  # 0 is not a win
    assert trailing_winrate([5.0] * 5 + [-1.0] * 20) == 0.0  # only the last 20 count
    assert trailing_winrate([1.0, -1.0, 1.0], window=2) == 0.5
    assert trailing_winrate([]) == 0.5  # neutral


def test_volatility_hand_value():
    # returns 0.1 and -0.1: mean 0, population std 0.1
    assert volatility([100.0, 110.0, 99.0]) == pytest.approx(0.1)
    # returns 0.01 and 0.03 -> population std 0.01
    assert volatility([100.0, 101.0, 104.03]) == pytest.approx(0.01)


def test_volatility_degenerate_series():
    assert volatility([]) == 0.0
    assert volatility([100.0]) == 0.0
    assert volatility([50.0, 50.0, 50.0]) == 0.0
    with pytest.raises(ValueError, match="prices"):
        volatility([100.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="prices"):
        volatility([100.0, math.nan])
    with pytest.raises(ValueError, match="prices"):
        volatility([100.0, math.inf])


def test_equity_curve_slope_hand_value():
    # n=3, Σx=3, Σy=6, Σxy=8, Σx²=5: (3*8 - 3*6) / (3*5 - 9) = 1; mean 2 -> 0.5
    assert equity_curve_slope([1.0, 2.0, 3.0]) == pytest.approx(0.5)
    # falling: slope -10, mean 100 -> -0.1
    assert equity_curve_slope([110.0, 100.0, 90.0]) == pytest.approx(-0.1)


def test_equity_curve_slope_degenerate():
    assert equity_curve_slope([]) == 0.0
    assert equity_curve_slope([100.0]) == 0.0
    assert equity_curve_slope([100.0, 100.0, 100.0]) == 0.0  # constant equity
    assert equity_curve_slope([-1.0, 1.0]) == 0.0  # mean 0: neutral, not inf
    with pytest.raises(ValueError, match="equity"):
        equity_curve_slope([1.0, math.nan])


def test_market_pressure_hand_value():
    # (105 - 100) / 100 = 0.05 -> tanh(1)
    assert market_pressure([100.0, 101.0, 102.0, 103.0, 105.0]) == pytest.approx(math.tanh(1.0))
    # only the 5th-last price (100, not 50) is the reference: (95 - 100) / 100 = -0.05
    assert market_pressure([50.0, 100.0, 101.0, 102.0, 103.0, 95.0]) == pytest.approx(
        math.tanh(-1.0)
    )
    assert market_pressure([100.0, 101.0, 102.0, 103.0]) == 0.0  # under 5 prices
    assert market_pressure([]) == 0.0


def test_account_health_hand_value():
    assert account_health([100.0, 120.0, 90.0]) == pytest.approx(0.75)
    assert account_health([100.0, 120.0]) == 1.0
    assert account_health([]) == 1.0


def test_feature_batches_equal_rowwise():
    rng = np.random.default_rng(7)
    batch = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, (6, 21)), axis=1))
    for fn in (volatility, market_pressure, equity_curve_slope, efficiency_ratio):
        np.testing.assert_allclose(fn(batch), [fn(row) for row in batch])
    np.testing.assert_array_equal(label_regime(batch), [label_regime(row) for row in batch])


@pytest.mark.parametrize(
    ("prices", "expected"),
    [
        ([100, 101, 102, 103, 104, 105], Regime.TREND),  # efficiency 1, steady moves
        ([100, 101, 100, 101, 100, 106], Regime.BREAKOUT),  # new high, 6 % vs ~1 % moves
        ([100, 102, 100, 102, 100, 102, 100, 97], Regime.MEAN_REVERSION),  # 3.375 >= 1.5*1.576
        ([100, 102, 100, 102, 100, 101], Regime.RANGE),  # efficiency 1/9, near the mean
        ([100, 101], Regime.RANGE),  # under 3 prices: neutral
    ],
)
def test_label_regime_rule(prices, expected):
    assert label_regime(np.asarray(prices, dtype=float)) == expected


def test_label_regime_thresholds_configurable():
    prices = np.asarray([100, 102, 100, 102, 100, 102, 100, 97], dtype=float)
    assert label_regime(prices, RegimeRule(reversion_z=3.0)) == Regime.RANGE
    assert label_regime(prices, RegimeRule(trend_efficiency=0.1)) == Regime.TREND


def test_state_space_sizes():
    assert META_STATE_SPACE.n_states == 972
    assert SIZING_STATE_SPACE.n_states == 243
    assert meta_state_space({"volatility": (0.005, 0.01, 0.03)}).n_states == 4 * 4 * 3**4


def test_meta_state_encode_hand_value():
    features = {
        "regime": Regime.BREAKOUT,  # digit 2, radix 243
        "volatility": 0.02,  # bin 1, radix 81
        "market_pressure": 0.5,  # bin 2, radix 27
        "confidence": 0.6,  # bin 1, radix 9
        "previous_winrate": 0.3,  # bin 0, radix 3
        "account_health": 1.0,  # bin 2, radix 1
    }
    # 2*243 + 1*81 + 2*27 + 1*9 + 0*3 + 2 = 632
    assert META_STATE_SPACE.encode(features) == 632
    assert META_STATE_SPACE.decode(632) == {
        "regime": 2,
        "volatility": 1,
        "market_pressure": 2,
        "confidence": 1,
        "previous_winrate": 0,
        "account_health": 2,
    }
    assert META_STATE_SPACE.encode({**features, "regime": "BREAKOUT"}) == 632


def test_bin_edges_are_left_closed():
    vol = Feature("volatility", edges=(0.01, 0.03))
    np.testing.assert_array_equal(vol.bin([0.0099, 0.01, 0.0299, 0.03, 0.5]), [0, 1, 1, 2, 2])
    assert vol.label(0) == "volatility<0.01"
    assert vol.label(1) == "0.01<=volatility<0.03"
    assert vol.label(2) == "volatility>=0.03"


def test_state_space_errors():
    with pytest.raises(ValueError, match="missing features"):
        SIZING_STATE_SPACE.encode({"volatility": 0.02})
    with pytest.raises(ValueError, match="out of range"):
        SIZING_STATE_SPACE.decode(243)
    with pytest.raises(ValueError, match="unknown features"):
        sizing_state_space({"leverage": (1, 2)})
    with pytest.raises(ValueError, match="edges must increase"):
        Feature("x", edges=(0.3, 0.1))
    with pytest.raises(ValueError, match="volatility"):
        META_STATE_SPACE.encode(
            {f: 0.0 for f in META_STATE_SPACE.feature_names} | {"volatility": math.nan}
        )


@pytest.mark.parametrize("space", [META_STATE_SPACE, SIZING_STATE_SPACE])
def test_every_state_round_trips(space):
    index = np.arange(space.n_states)
    bins = space.decode(index)
    np.testing.assert_array_equal(space.encode_bins(bins), index)
    assert len({space.label(i) for i in range(space.n_states)}) == space.n_states


@given(prices_st)
def test_pressure_in_unit_interval(prices):
    value = market_pressure(prices)
    assert -1.0 <= value <= 1.0


@given(prices_st)
def test_volatility_and_efficiency_defined(prices):
    assert volatility(prices) >= 0.0
    assert 0.0 <= efficiency_ratio(prices) <= 1.0 + 1e-12
    assert label_regime(prices) in set(Regime)


@given(st.lists(st.floats(-50, 50, allow_nan=False), max_size=50))
def test_winrate_in_unit_interval(pnls):
    assert 0.0 <= trailing_winrate(pnls) <= 1.0


@given(
    st.floats(-5, 5, allow_nan=False),
    st.floats(0, 3, allow_nan=False),
    st.floats(0, 1),
    st.floats(0, 1),
    st.floats(0, 0.2),
)
def test_sizing_encode_decode_round_trip(slope, exposure, conf, winrate, vol):
    features = {
        "signal_confidence": conf,
        "portfolio_exposure": exposure,
        "recent_winrate": winrate,
        "volatility": vol,
        "equity_curve_slope": slope,
    }
    index = SIZING_STATE_SPACE.encode(features)
    assert SIZING_STATE_SPACE.decode(index) == {
        k: int(v) for k, v in SIZING_STATE_SPACE.bins(features).items()
    }


def test_state_space_dict_round_trip():
    import json

    space = meta_state_space({"volatility": (0.005, 0.02)})
    again = type(space).from_dict(json.loads(json.dumps(space.to_dict())))
    assert again == space and again.n_states == space.n_states
