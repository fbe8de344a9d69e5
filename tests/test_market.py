"""The compiled window features equal rlv2.states; the bar lookup finds the bar known at a time."""

from __future__ import annotations

import numpy as np
import pytest

from rlv2 import states
from rlv2.domain import Regime
from rlv2.market import asof_bars, window_market_features


def _walk(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))


@pytest.mark.parametrize("length", [1, 2, 3, 4, 5, 6, 20, 57])
def test_window_features_equal_the_python_formulas(length):
    close = _walk(400, length)
    lo = np.arange(0, 400 - length, 7)
    hi = lo + length - 1
    vol, pressure, regime = window_market_features(close, lo, hi)
    for i, (a, b) in enumerate(zip(lo, hi, strict=True)):
        window = close[a : b + 1]
        assert vol[i] == pytest.approx(states.volatility(window), rel=1e-12, abs=1e-18)
        assert pressure[i] == pytest.approx(states.market_pressure(window[-5:]), rel=1e-12)
        assert regime[i] == states.label_regime(window)


def test_every_regime_by_hand():
    cases = {
        # a 3 % jump to a new high after ~0.1 % moves: BREAKOUT
        Regime.BREAKOUT: [100.0, 100.1, 100.0, 100.1, 100.0, 103.0],
        # a steady rise, efficiency 1: TREND
        Regime.TREND: [100.0, 101.0, 102.0, 103.0, 104.0, 105.0],
        # a 0.6 % dip to a new low (not 2x the ~1 % rms), efficiency 0.6 / 8.6; mean
        # 100.34, std 0.566, |99.4 - 100.34| = 0.94 >= 1.5 * 0.566: MEAN_REVERSION
        Regime.MEAN_REVERSION: [100.0, 101.0] * 4 + [100.0, 99.4],
        # oscillation ending mid-range: RANGE
        Regime.RANGE: [100.0, 101.0, 100.0, 101.0, 100.0, 100.5],
    }
    close = np.concatenate([np.asarray(c) for c in cases.values()])
    sizes = np.array([len(c) for c in cases.values()])
    hi = np.cumsum(sizes) - 1
    _, _, regime = window_market_features(close, hi - sizes + 1, hi)
    assert [Regime(r) for r in regime] == list(cases)


def test_volatility_and_pressure_by_hand():
    close = np.array([100.0, 110.0, 99.0, 99.0, 108.9])
    vol, pressure, _ = window_market_features(close, np.array([0, 0]), np.array([4, 1]))
    returns = np.array([0.1, -0.1, 0.0, 0.1])  # mean 0.025, population variance 0.006875
    assert vol[0] == pytest.approx(np.sqrt(0.006875))
    assert returns.std() == pytest.approx(vol[0])
    assert pressure[0] == pytest.approx(np.tanh(20 * 8.9 / 100.0))
    assert vol[1] == 0.0  # one return
    assert pressure[1] == 0.0  # under 5 bars


def test_bad_windows_are_refused():
    close = np.ones(10)
    with pytest.raises(ValueError, match="lo <= hi"):
        window_market_features(close, np.array([5]), np.array([4]))
    with pytest.raises(ValueError, match="< 10"):
        window_market_features(close, np.array([5]), np.array([10]))


def test_asof_bars_finds_the_last_bar_at_or_before():
    ts = np.array(
        ["2024-01-01T00:00", "2024-01-01T01:00", "2024-01-01T02:00", "2024-01-01T00:30"],
        dtype="datetime64[us]",
    )
    first, last = np.array([0, 3]), np.array([2, 3])  # symbol 0: bars 0-2, symbol 1: bar 3
    query = np.array(
        [
            "2023-12-31T23:59",  # before symbol 0's first bar
            "2024-01-01T00:00",  # exactly bar 0
            "2024-01-01T01:59",  # bar 1
            "2024-01-01T09:00",  # after the last: bar 2
            "2024-01-01T00:30",  # symbol 1, exactly its bar
            "2024-01-01T09:00",  # unknown symbol
            "NaT",
        ],
        dtype="datetime64[us]",
    )
    code = np.array([0, 0, 0, 0, 1, -1, 0])
    assert asof_bars(ts, first, last, code, query).tolist() == [-1, 0, 1, 2, 3, -1, -1]


@pytest.mark.parametrize("seed", range(6))
def test_asof_bars_in_any_query_order_equals_a_search_per_row(seed):
    """The galloping search gives each row's own answer, in time order or not."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 40, 3)
    ts = np.concatenate([np.sort(rng.choice(300, c, replace=False)) for c in counts])
    last = np.cumsum(counts) - 1
    first = last - counts + 1
    query = rng.integers(-5, 310, 200)
    if seed % 2 == 0:  # time order, as decisions come; odd seeds: random order, as closes
        query = np.sort(query)
    code = rng.integers(-1, 3, 200)
    expected = [
        -1
        if c < 0 or q < ts[first[c]]
        else int(first[c] + np.searchsorted(ts[first[c] : last[c] + 1], q, side="right") - 1)
        for c, q in zip(code, query, strict=True)
    ]
    got = asof_bars(ts.astype("datetime64[us]"), first, last, code, query.astype("datetime64[us]"))
    assert got.tolist() == expected
