"""The compiled account features, by hand and against rlv2.states / rlv2.rewards."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlv2 import rewards, states
from rlv2.account import account_after_closes


def test_account_features_by_hand():
    # margin 10 % of equity, compounding: +10 % -> 100 * 1.01 = 101,
    # -5 % -> 101 * 0.995 = 100.495, +20 % -> 100.495 * 1.02 = 102.5049
    acct = account_after_closes(np.array([10.0, -5.0, 20.0]), 100.0, 0.1, window=2)
    np.testing.assert_allclose(acct["equity"], [101.0, 100.495, 102.5049])
    np.testing.assert_allclose(acct["account_health"], [1.0, 100.495 / 101.0, 1.0])
    np.testing.assert_allclose(acct["winrate"], [1.0, 0.5, 0.5])
    # returns [0.1, -0.05]: mean 0.025, std 0.075; [-0.05, 0.2]: mean 0.075, std 0.125
    np.testing.assert_allclose(acct["sharpe_signal"], [0.0, math.tanh(1 / 3), math.tanh(0.6)])
    # slopes -0.505 and +2.0099 per trade over mean equity 100.7475 and 101.49995
    np.testing.assert_allclose(
        acct["equity_curve_slope"], [0.0, -0.505 / 100.7475, 2.0099 / 101.49995]
    )


def test_a_losing_account_stays_positive():
    # 1,000 liquidations in a row: each loses its margin, 10 % of the equity
    acct = account_after_closes(np.full(1000, -100.0), 100.0, 0.1, window=20)
    assert (acct["equity"] > 0).all()
    assert acct["equity"][-1] == pytest.approx(100.0 * 0.9**1000, rel=1e-9)
    assert np.isfinite(acct["account_health"]).all()


def test_account_features_equal_the_python_formulas():
    pnl = np.random.default_rng(7).normal(0.0, 8.0, 300)
    acct = account_after_closes(pnl, 100.0, 0.1, window=20)
    equity = 100.0 * np.cumprod(1.0 + 0.1 * pnl / 100.0)
    for k in range(0, 300, 11):
        tail = slice(max(0, k - 19), k + 1)
        assert acct["winrate"][k] == pytest.approx(states.trailing_winrate(pnl[: k + 1]))
        assert acct["sharpe_signal"][k] == pytest.approx(rewards.sharpe_signal(pnl[tail] / 100))
        assert acct["equity_curve_slope"][k] == pytest.approx(
            states.equity_curve_slope(equity[tail]), rel=1e-9, abs=1e-15
        )
        assert acct["account_health"][k] == pytest.approx(
            states.account_health(np.r_[100.0, equity[: k + 1]])
        )


def test_no_closes_and_bad_input():
    empty = account_after_closes(np.zeros(0), 100.0, 0.1, window=20)
    assert all(v.size == 0 for v in empty.values())
    with pytest.raises(ValueError, match="finite"):
        account_after_closes(np.array([1.0, np.nan]), 100.0, 0.1, window=20)
    with pytest.raises(ValueError, match="window"):
        account_after_closes(np.array([1.0]), 100.0, 0.1, window=0)
