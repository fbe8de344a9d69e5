"""Evaluation metrics and the champion/challenger comparison, on hand-made runs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlv2.evaluation import (
    BANDWIDTH_SHARE,
    Bootstrap,
    bartlett_long_run_variance,
    bootstrap_interval,
    bootstrap_means,
    compare_policies,
    fixed_b_critical_value,
    hac_interval,
    max_drawdown_pct,
    per_trade_sharpe,
    policy_metrics,
    symbol_hac_interval,
    symbol_weights,
)
from rlv2.pipeline import TrainConfig
from rlv2.replay import SimulationResult


def run(pnl, decisions=None, meta_reward=None) -> SimulationResult:
    pnl = np.asarray(pnl, dtype=float)
    n = len(pnl)
    return SimulationResult(
        decision=np.arange(n) if decisions is None else np.asarray(decisions),
        meta_state=np.zeros(n, np.int64),
        meta_action=np.arange(n) % 3,
        sizing_state=np.arange(n) % 2,
        sizing_action=np.zeros(n, np.int64),
        pnl_pct=pnl,
        max_drawdown_pct=np.abs(pnl),
        liquidated=np.zeros(n, bool),
        meta_reward=pnl if meta_reward is None else np.asarray(meta_reward, dtype=float),
        sizing_reward=pnl / 2,
        equity=100.0 + 0.1 * np.cumsum(pnl),
    )


def test_max_drawdown_hand_value():
    # 100 -> 110 -> 99 -> 105: worst fall 11 from the peak 110 = 10 %
    assert max_drawdown_pct(np.array([110.0, 99.0, 105.0])) == pytest.approx(10.0)
    assert max_drawdown_pct(np.array([101.0, 102.0])) == 0.0


def test_policy_metrics_hand_values():
    m = policy_metrics(run([10.0, -5.0, 20.0, 0.0]), n_meta_states=2, n_sizing_states=2)
    assert m["n_trades"] == 4 and m["total_pnl_pct"] == 25.0 and m["mean_pnl_pct"] == 6.25
    assert m["win_rate"] == 0.5  # 0 is not a win
    # equity 101, 100.5, 102.5, 102.5: fall 0.5 from 101
    assert m["max_drawdown_pct"] == pytest.approx(0.5 / 101 * 100)
    assert m["sharpe"] == pytest.approx(6.25 / np.std([10.0, -5.0, 20.0, 0.0]))
    # meta pairs (state 0, actions 0,1,2): 3 of 2*48
    assert m["meta_visited_share"] == pytest.approx(3 / 96)
    assert per_trade_sharpe(np.array([1.0])) == 0.0


def test_clear_winner_is_promoted_and_tie_is_not():
    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, 400)
    better = compare_policies(run(base + 0.5), run(base), metric="pnl_pct")
    assert better.promote and better.difference == pytest.approx(0.5)
    assert better.ci_low > 0 and better.n == 400
    tie = compare_policies(run(base), run(base), metric="pnl_pct")
    assert not tie.promote and "does not exclude 0" in tie.reason
    worse = compare_policies(run(base - 0.1), run(base), metric="pnl_pct")
    assert not worse.promote and "below margin" in worse.reason


def test_margin_and_noise_block_promotion():
    rng = np.random.default_rng(1)
    champion = rng.normal(0, 1, 300)
    noisy = champion + rng.normal(0.05, 3.0, 300)  # small gain, much noise
    d = compare_policies(run(noisy), run(champion), metric="pnl_pct")
    assert not d.promote
    clear = compare_policies(run(champion + 0.5), run(champion), metric="pnl_pct", margin=1.0)
    assert not clear.promote and "below margin 1" in clear.reason


def test_only_common_decisions_are_compared():
    a = run([1.0, 2.0, 3.0], decisions=[0, 1, 2])
    b = run([0.0, 0.0, 0.0], decisions=[1, 2, 3])
    d = compare_policies(a, b, metric="pnl_pct", n_boot=200)
    assert d.n == 2 and d.candidate_value == pytest.approx(2.5)
    with pytest.raises(ValueError, match="metric"):
        compare_policies(a, b, metric="sortino")


def test_a_candidate_that_goes_bust_is_refused():
    champion = run([1.0] * 50)
    bust = run([200.0] * 49 + [-100.0] * 1)
    bust = bust._replace(equity=np.r_[np.full(49, 50.0), 0.0])
    d = compare_policies(bust, champion, metric="pnl_pct")
    assert not d.promote and "bust" in d.reason
    # the account compounds and never reaches 0: the simulation stops at BUST_EQUITY (1)
    stopped = bust._replace(equity=np.r_[np.full(49, 50.0), 0.8])
    assert "bust" in compare_policies(stopped, champion, metric="pnl_pct").reason


def test_bootstrap_resample_b_uses_its_own_stream_whatever_the_threads():
    import numba

    from rlv2.evaluation import _bootstrap_means
    from rlv2.rng import make_rng, stream_seed, uniform

    diff = np.random.default_rng(3).normal(0.0, 1.0, 57)
    means = _bootstrap_means(diff, 9, 42)
    rng = make_rng(stream_seed(42, 4))
    draws = [diff[int(uniform(rng) * 57)] for _ in range(57)]
    assert means[4] == sum(draws) / 57  # same draws, same summation order
    numba.set_num_threads(1)
    try:
        assert np.array_equal(_bootstrap_means(diff, 9, 42), means)
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)


def ar1(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    """A stationary zero-mean AR(1) series of unit variance."""
    shocks = rng.normal(0.0, math.sqrt(1.0 - phi**2), n)
    x = np.empty(n)
    x[0] = rng.normal()
    for t in range(1, n):
        x[t] = phi * x[t - 1] + shocks[t]
    return x


def test_persistent_zero_mean_differences_are_refused_near_the_nominal_rate():
    # AR(1) with phi = 0.8: the mean's variance is (1 + phi) / (1 - phi) = 9 times the
    # i.i.d. one, so an i.i.d. interval is 3 times too narrow and promotes about 25 % of
    # the time instead of the one-sided 2.5 % of a 95 % interval
    rng = np.random.default_rng(7)
    promoted = {Bootstrap.NEWEY_WEST: 0, Bootstrap.STATIONARY: 0, Bootstrap.IID: 0}
    for replicate in range(100):
        diff = ar1(rng, 400, 0.8)
        for method in promoted:
            interval = bootstrap_interval(diff, method=method, n_boot=500, seed=replicate)
            promoted[method] += interval.low > 0.0
    assert promoted[Bootstrap.NEWEY_WEST] <= 8, promoted
    assert promoted[Bootstrap.STATIONARY] <= 8, promoted
    assert promoted[Bootstrap.IID] >= 15, promoted


def test_a_clear_gain_is_promoted_and_the_decision_records_the_dependence():
    rng = np.random.default_rng(11)
    base = rng.normal(0.0, 1.0, 400)
    gain = 0.6 + ar1(rng, 400, 0.8)  # long-run sd 3 / sqrt(400) = 0.15: 4 sd above 0
    d = compare_policies(run(base + gain), run(base), metric="pnl_pct")
    assert d.promote and d.bootstrap == "newey-west-symbols" and d.guardrail == ""
    assert d.block_length >= 0.15 * 400  # the bandwidth, at least its share of the trades
    assert d.estimate == pytest.approx(d.difference)  # one symbol: the plain mean
    nw = compare_policies(run(base + gain), run(base), metric="pnl_pct", bootstrap="newey-west")
    assert nw.promote and nw.block_length >= 1.3 * math.sqrt(400)  # at least its floor
    assert 400 / 20 < d.effective_n < 400 / 3  # true value 400 / 9 = 44
    iid = compare_policies(run(base + gain), run(base), metric="pnl_pct", bootstrap="iid")
    assert iid.block_length == 1.0 and iid.effective_n == pytest.approx(400, rel=0.15)
    assert iid.ci_high - iid.ci_low < (d.ci_high - d.ci_low) / 2


def test_the_block_bootstrap_is_reproducible_and_copes_with_short_or_flat_series():
    diff = ar1(np.random.default_rng(5), 200, 0.5)
    for method in Bootstrap:
        assert bootstrap_interval(diff, method=method, seed=3) == bootstrap_interval(
            diff, method=method, seed=3
        )
    short = bootstrap_interval(np.array([1.0, -0.5, 2.0]), method=Bootstrap.CIRCULAR)
    assert short.block_length == 1.0 and short.low <= short.high
    flat = bootstrap_interval(np.full(30, 0.25))
    assert (flat.low, flat.high, flat.effective_n) == (0.25, 0.25, 30.0)
    with pytest.raises(ValueError, match="bootstrap"):
        compare_policies(run([1.0, 2.0]), run([0.0, 0.0]), bootstrap="moving")


def test_the_interval_is_read_from_the_resamples_the_chart_shows():
    diff = ar1(np.random.default_rng(9), 150, 0.6) + 0.1
    for method in Bootstrap:
        means = bootstrap_means(diff, 400, 5, method)
        interval = bootstrap_interval(diff, method=method, n_boot=400, seed=5)
        low, high = np.percentile(means, [2.5, 97.5])
        if method in (Bootstrap.NEWEY_WEST, Bootstrap.NEWEY_WEST_SYMBOLS):
            # no resamples: the chart's are the circular bootstrap's at its bandwidth,
            # their spread near the t interval's standard error
            se = (
                (interval.high - interval.low)
                / 2
                / fixed_b_critical_value(interval.block_length / diff.size, 0.975)
            )
            assert float(np.std(means)) == pytest.approx(se, rel=0.35)
        elif method is Bootstrap.IID:  # the original gate: percentile
            assert (interval.low, interval.high) == pytest.approx((low, high))
        else:  # basic: reflected about the mean
            m = float(diff.mean())
            assert (interval.low, interval.high) == pytest.approx((2 * m - high, 2 * m - low))


def test_the_fixed_b_critical_values_are_kiefer_and_vogelsangs_and_hold_their_level():
    # b -> 0: the normal quantile; at a tabulated quantile, their polynomial
    assert fixed_b_critical_value(0.0, 0.975) == pytest.approx(1.95996, abs=1e-4)
    assert fixed_b_critical_value(0.5, 0.975) == pytest.approx(
        1.96 + 2.9694 * 0.5 + 0.4160 * 0.25 - 0.5324 * 0.125, abs=1e-3
    )
    # between the tabulated quantiles, monotone in both the quantile and b
    assert fixed_b_critical_value(0.2, 0.96) > fixed_b_critical_value(0.2, 0.95)
    assert fixed_b_critical_value(0.3, 0.96) > fixed_b_critical_value(0.2, 0.96)
    with pytest.raises(ValueError, match="quantile"):
        fixed_b_critical_value(0.1, 1.0)
    # i.i.d. data read with a wide bandwidth: the normal quantile rejects far too often, the
    # fixed-b one about its nominal 2.5 % one-sided
    rng = np.random.default_rng(21)
    n, bandwidth = 200, 80.0
    t = []
    for _ in range(1500):
        x = rng.normal(size=n)
        t.append(x.mean() / math.sqrt(bartlett_long_run_variance(x, bandwidth) / n))
    t = np.asarray(t)
    assert np.mean(t > 1.96) > 0.06
    assert 0.01 < np.mean(t > fixed_b_critical_value(bandwidth / n, 0.975)) < 0.045


def test_the_bartlett_long_run_variance_is_the_weighted_autocovariance_sum():
    x = np.random.default_rng(2).normal(size=50).cumsum()
    e = x - x.mean()
    m = 7.5
    expected = e @ e / 50 + 2 * sum((1 - k / m) * (e[:-k] @ e[k:]) / 50 for k in range(1, 8))
    assert bartlett_long_run_variance(x, m) == pytest.approx(expected)
    assert bartlett_long_run_variance(x, 1.0) == pytest.approx(np.var(x))


def test_no_edge_persistent_heavy_tailed_differences_like_stage_8s_are_refused():
    # what the gate meets on stage 8's "one model" nulls (README, the promotion gate),
    # without the pipeline: 665 heavy-tailed trades (Student t, 3 degrees of freedom)
    # and, under them, which model is right persisting (a sign redrawn every 12 trades on
    # average, about the decay of those nulls' autocorrelations in trade order)
    rng = np.random.default_rng(13)
    promoted = {Bootstrap.NEWEY_WEST_SYMBOLS: 0, Bootstrap.NEWEY_WEST: 0, Bootstrap.IID: 0}
    replicates = 300
    for _ in range(replicates):
        sign = np.where(rng.random(665) < 1 / 12, rng.choice([-1.0, 1.0], 665), 0.0)
        sign[0] = rng.choice([-1.0, 1.0])
        runs = np.maximum.accumulate(np.where(sign != 0, np.arange(665), 0))
        diff = sign[runs] * np.abs(rng.standard_t(3, 665)) * 0.65 + rng.standard_t(3, 665)
        for method in promoted:
            promoted[method] += bootstrap_interval(diff, method=method, n_boot=200).low > 0
    assert promoted[Bootstrap.NEWEY_WEST_SYMBOLS] / replicates <= 0.05, promoted
    assert promoted[Bootstrap.NEWEY_WEST] / replicates <= 0.05, promoted  # measured 4.3 %
    assert promoted[Bootstrap.IID] / replicates >= 0.08, promoted  # measured 12 %


def test_the_newey_west_interval_is_the_t_interval_its_decision_records():
    diff = ar1(np.random.default_rng(17), 300, 0.5) + 0.2
    interval = hac_interval(diff, 0.9)
    half = (interval.high - interval.low) / 2
    lrv = bartlett_long_run_variance(diff, interval.block_length)
    c = fixed_b_critical_value(interval.block_length / 300, 0.95)
    assert half == pytest.approx(c * math.sqrt(lrv / 300))
    assert interval.low + half == pytest.approx(diff.mean())
    assert interval.effective_n == pytest.approx(300 * np.var(diff) / lrv)
    assert bootstrap_interval(diff, method=Bootstrap.NEWEY_WEST, confidence=0.9) == interval


def guarded(candidate: SimulationResult, champion: SimulationResult, **tolerances: float):
    """The gate on the meta reward with the given guardrail tolerances."""
    return compare_policies(candidate, champion, metric="meta_reward", **tolerances)


def test_a_winner_on_reward_that_earns_less_per_trade_is_refused_by_the_pnl_guardrail():
    rng = np.random.default_rng(4)
    pnl = rng.normal(0.5, 1.0, 300)
    champion = run(pnl, meta_reward=pnl)
    # much better on its reward, 0.3 less pnl per trade; same equity path (no drawdown)
    candidate = run(pnl - 0.3, meta_reward=pnl + 1.0)._replace(equity=champion.equity)
    d = guarded(candidate, champion, pnl_tolerance=0.1)
    assert not d.promote and d.guardrail == "pnl"
    assert d.reason.startswith("wins on meta_reward") and "guardrail pnl" in d.reason
    assert d.ci_low > 0.0  # the comparison itself was a clear win
    within = guarded(candidate, champion, pnl_tolerance=0.5)
    assert within.promote and within.guardrail == "" and within.pnl_tolerance == 0.5


def test_a_winner_with_a_deeper_drawdown_is_refused_by_the_drawdown_guardrail():
    rng = np.random.default_rng(6)
    pnl = rng.normal(0.5, 1.0, 300)
    champion = run(pnl, meta_reward=pnl)
    equity = champion.equity.copy()
    equity[100:150] *= 0.95  # a 5 % dip the champion does not have
    candidate = run(pnl, meta_reward=pnl + 1.0)._replace(equity=equity)
    dd = max_drawdown_pct(equity) - max_drawdown_pct(champion.equity)
    assert 4.0 < dd < 6.0
    d = guarded(candidate, champion, pnl_tolerance=0.0, drawdown_tolerance=1.0)
    assert not d.promote and d.guardrail == "drawdown" and "guardrail drawdown" in d.reason
    within = guarded(candidate, champion, pnl_tolerance=0.0, drawdown_tolerance=6.0)
    assert within.promote and within.guardrail == ""


def test_both_guardrails_are_named_and_none_applies_to_a_loser_or_by_default():
    rng = np.random.default_rng(8)
    pnl = rng.normal(0.5, 1.0, 300)
    champion = run(pnl, meta_reward=pnl)
    worse = run(pnl - 0.5, meta_reward=pnl + 1.0)  # its equity falls with its pnl
    both = guarded(worse, champion, pnl_tolerance=0.0, drawdown_tolerance=0.0)
    assert not both.promote and both.guardrail == "pnl,drawdown"
    assert guarded(worse, champion).promote  # compare_policies alone: no guardrail
    loser = guarded(run(pnl, meta_reward=pnl - 1.0), champion, pnl_tolerance=0.0)
    assert not loser.promote and loser.guardrail == "" and "below margin" in loser.reason


def test_the_guardrail_tolerances_are_settings_of_the_training_config():
    config = TrainConfig()
    assert (config.bootstrap, config.pnl_tolerance) == ("newey-west-symbols", 0.0)
    assert TrainConfig(drawdown_tolerance=math.inf).drawdown_tolerance == math.inf
    for bad in ({"pnl_tolerance": -0.1}, {"drawdown_tolerance": math.nan}):
        with pytest.raises(ValueError, match="must be >= 0"):
            TrainConfig(**bad)
    with pytest.raises(ValueError, match="bootstrap"):
        TrainConfig(bootstrap="moving")


def test_symbol_weights_are_the_inverse_median_absolute_difference_averaging_one():
    diff = np.array([1.0, -2.0, 0.0, 4.0, 0.0])
    groups = np.array([0, 0, 1, 1, 1])
    # symbol 0: median of |1|, |-2| = 1.5; symbol 1: the zeros say nothing, median |4| = 4;
    # 1 / 1.5, 1 / 1.5, 1 / 4, 1 / 4, 1 / 4 averages (4 / 3 + 3 / 4) / 5 = 0.41667
    w = symbol_weights(diff, groups, min_trades=1)
    mean = (4 / 3 + 3 / 4) / 5
    assert w == pytest.approx([1 / 1.5 / mean] * 2 + [0.25 / mean] * 3)
    assert w.mean() == pytest.approx(1.0)
    # too few trades of their own: every symbol takes the scale of all (median 2): equal
    assert symbol_weights(diff, groups) == pytest.approx(np.ones(5))
    assert symbol_weights(np.zeros(4), np.array([0, 1, 0, 1])) == pytest.approx(np.ones(4))
    with pytest.raises(ValueError, match="shape"):
        symbol_weights(diff, groups[:3])


def test_the_symbol_interval_with_one_symbol_is_the_newey_west_t_interval_at_its_share():
    diff = ar1(np.random.default_rng(23), 300, 0.5) + 0.2
    interval = symbol_hac_interval(diff, None, 0.95)
    assert interval.block_length >= BANDWIDTH_SHARE * 300
    lrv = bartlett_long_run_variance(diff, interval.block_length)
    c = fixed_b_critical_value(interval.block_length / 300, 0.975)
    half = c * math.sqrt(lrv / 300)
    assert (interval.low, interval.high) == pytest.approx((diff.mean() - half, diff.mean() + half))
    assert interval.estimate == pytest.approx(diff.mean())
    same = symbol_hac_interval(diff, np.zeros(300, np.int64), 0.95)
    assert same == pytest.approx(interval)


def two_symbols(rng: np.random.Generator, edge: float) -> tuple[np.ndarray, np.ndarray]:
    """665 trades of two symbols in time order, like stage 8's holdouts: 570 of a quiet one
    (an hourly FX pair) and, every seventh, 95 of one that moves ten times as much (a
    daily index); in each, which model is right persists along its own decisions (AR(1),
    phi = 0.9). ``edge``: the mean difference on the quiet symbol, in its units."""
    groups = np.where(np.arange(665) % 7 == 6, 1, 0)
    diff = np.empty(665)
    diff[groups == 0] = ar1(rng, 570, 0.9) + edge
    diff[groups == 1] = 10.0 * ar1(rng, 95, 0.9)
    return diff, groups


def test_the_symbol_gate_keeps_its_level_and_hears_the_quiet_symbol():
    # With no edge: the persistence (long-run variance 19 times the variance) is in each
    # symbol's own decisions, which the time order interleaves, so a bandwidth over all
    # trades misses most of the loud symbol's; the symbol gate reads it along each
    # symbol and promotes near its nominal 2.5 % (measured 2 %; the plain Newey-West
    # 21 %). With an edge on the quiet symbol's 570 trades only: a plain mean is the
    # loud symbol's (its 95 trades carry 96 % of the variance); weighed by each symbol's
    # own scale the edge is heard (measured 87.5 %).
    rng = np.random.default_rng(29)
    replicates = 200
    null = {Bootstrap.NEWEY_WEST_SYMBOLS: 0, Bootstrap.NEWEY_WEST: 0}
    edge = {Bootstrap.NEWEY_WEST_SYMBOLS: 0}
    for _ in range(replicates):
        for counts, shift in ((null, 0.0), (edge, 0.7)):
            diff, groups = two_symbols(rng, shift)
            for method in counts:
                interval = bootstrap_interval(diff, method=method, groups=groups)
                counts[method] += interval.low > 0.0
    assert null[Bootstrap.NEWEY_WEST_SYMBOLS] / replicates <= 0.05, null
    assert null[Bootstrap.NEWEY_WEST] / replicates >= 0.10, null
    assert edge[Bootstrap.NEWEY_WEST_SYMBOLS] / replicates >= 0.75, edge


def test_the_gate_takes_each_decisions_symbol_from_the_decision_index():
    rng = np.random.default_rng(31)
    diff, groups = two_symbols(rng, 1.0)
    base = rng.normal(size=665)
    # the champion did not trade decision 0: the common trades are 1..664
    candidate = run(base + diff)
    champion = run(base[1:], decisions=np.arange(1, 665))
    d = compare_policies(candidate, champion, metric="pnl_pct", groups=groups)
    expected = bootstrap_interval(diff[1:], groups=groups[1:])
    assert (d.ci_low, d.ci_high, d.estimate) == pytest.approx(
        (expected.low, expected.high, expected.estimate)
    )
    assert d.estimate != pytest.approx(d.difference)  # weighted: not the plain mean
    refused = compare_policies(candidate, run(base + diff + 0.5), metric="pnl_pct", groups=groups)
    assert "below margin" in refused.reason
