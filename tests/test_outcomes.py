"""SPEC C: outcomes of untaken actions from the price path, against hand-computed values."""

import numpy as np
import pytest

from rlv2.domain import Strategy
from rlv2.outcomes import (
    DEFAULT_EXIT_RULES,
    ExitRule,
    position_notional,
    position_outcome,
    position_pnl,
    walk_paths,
)

RULE = ExitRule(take_profit=2.0, stop_loss=3.0, max_bars=10)


def bars(closes):
    c = np.asarray(closes, dtype=float)
    return c, c + 0.5, c - 0.5


def test_take_profit_long():
    c, h, lo = bars([100, 101, 102, 103, 99])
    out = walk_paths(c, h, lo, [0], [4], [1], 0.01, RULE)  # tp at +2 %: bar 2
    assert out.exit_idx[0] == 2 and out.ret[0] == pytest.approx(0.02) and out.mae[0] == 0.0


def test_stop_loss_short_and_pnl_scaling():
    c, h, lo = bars([100, 101, 102, 104, 90])
    out = walk_paths(c, h, lo, [0], [4], [-1], 0.01, RULE)
    # short: -1 %, -2 %, -4 % <= -3 % at bar 3; worst high 104.5 -> mae 4.5 %
    assert out.exit_idx[0] == 3
    assert out.ret[0] == pytest.approx(-0.04) and out.mae[0] == pytest.approx(0.045)
    # size 0.5, weight UP 1.25, L=2: effective leverage 1.25
    # pnl 100*1.25*-0.04 = -5, drawdown 100*1.25*0.045 = 5.625 (percent of margin)
    pnl, dd, liq = position_pnl(out.ret, out.mae, 0.5, 2, 1.25)
    assert pnl[0] == pytest.approx(-5.0) and dd[0] == pytest.approx(5.625) and not liq[0]


def test_liquidation_caps_the_loss_at_the_margin():
    # size 1.0: L=7, mae 0.15: 1.05 >= 1 -> liquidated, the whole margin: -100
    # size 0.8, L=7: effective 5.6, 5.6*0.15 = 0.84 < 1: pnl 100*5.6*-0.1 = -56, dd 84
    pnl, dd, liq = position_pnl([-0.1, -0.1], [0.15, 0.15], [1.0, 0.8], [7, 7])
    assert liq.tolist() == [True, False]
    assert pnl[0] == pytest.approx(-100.0) and dd[0] == pytest.approx(100.0)
    assert pnl[1] == pytest.approx(-56.0) and dd[1] == pytest.approx(84.0)


def test_max_bars_and_symbol_end_truncate():
    c, h, lo = bars([100, 100.1, 100.2, 100.3, 100.4, 100.5])
    out = walk_paths(c, h, lo, [0, 0], [5, 2], [1, 1], 0.01, ExitRule(5.0, 5.0, 3))
    assert out.exit_idx.tolist() == [3, 2]  # max_bars 3; symbol ends at bar 2
    assert out.ret[0] == pytest.approx(0.003)


def test_strategy_codes_pick_their_rules():
    c, h, lo = bars(100 * np.ones(100))
    out = walk_paths(c, h, lo, [0, 0], [99, 99], [1, 1], 0.01, [Strategy.TREND, Strategy.RANGE])
    assert out.exit_idx.tolist() == [
        DEFAULT_EXIT_RULES[Strategy.TREND].max_bars,
        DEFAULT_EXIT_RULES[Strategy.RANGE].max_bars,
    ]


def test_the_scalar_rule_gives_hand_computed_outcomes():
    # e = 1.8 * 1.25 * 7 = 15.75: pnl 100 * 15.75 * 0.01, drawdown 100 * 15.75 * 0.05
    pnl, dd, liquidated = position_outcome(0.01, 0.05, 1.8, 7, 1.25)
    assert (pnl, dd, liquidated) == pytest.approx((15.75, 78.75, False))
    # e * mae = 15.75 * 0.07 >= 1: the margin is gone
    assert position_outcome(0.02, 0.07, 1.8, 7, 1.25) == (-100.0, 100.0, True)
    assert position_notional(1.0, 1.0, 5, 10.0) == 50.0
