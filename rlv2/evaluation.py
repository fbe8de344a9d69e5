"""How good a policy is on a window, and whether a challenger beats the champion.

Metrics of a simulated run (``rlv2.replay.SimulationResult``): total and mean pnl per
trade, Sharpe of per-trade pnl, max drawdown of the equity curve, win rate, mean reward
per agent, action distribution and the share of state-action pairs visited. The
promotion gate compares two policies on the same decisions with an interval of the mean
difference that respects the order of the trades (a Newey-West t interval with fixed-b
critical values, or a block bootstrap), then holds a winner to guardrails on
the figures a person reads: mean pnl per trade and max drawdown. The default interval
(``newey-west-symbols``) weighs each symbol's trades by the inverse of that symbol's
typical difference and reads the persistence along each symbol's own decisions.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import StrEnum
from statistics import NormalDist
from typing import Any, NamedTuple

import numba
import numpy as np
from numpy.typing import NDArray

from rlv2.actions import meta_space, sizing_space
from rlv2.domain import parse_enum
from rlv2.outcomes import BUST_EQUITY, INITIAL_EQUITY
from rlv2.replay import SimulationResult
from rlv2.rng import stream_seed, uniform_step

METRICS = ("pnl_pct", "meta_reward", "sizing_reward")
"""Per-trade quantities the promotion gate can compare."""
MIN_BLOCK_TRADES = 11
"""Fewest trades whose block length can be estimated: the estimate needs about
``sqrt(n) + 6`` autocorrelations of the differences. Fewer are resampled one by one."""
BANDWIDTH_FLOOR = 1.3
"""The Newey-West bandwidth is at least this times sqrt(n) trades: Lazarus, Lewis, Stock
and Watson's (2018) rule of thumb for HAR inference, a floor under the data-driven
estimate, which is short whenever a persistent component hides under heavy-tailed noise."""
BANDWIDTH_SHARE = 0.15
"""``newey-west-symbols``: the bandwidth is at least this share of the trades (a fixed-b
bandwidth). Model errors persist for tens of a symbol's decisions; a bandwidth short
against that underestimates the long-run variance (the Bartlett kernel's bias), and the
fixed-b critical value pays for a long one. Chosen on stage 8's histories between 0.1
(4-5 % false promotions) and 0.2 (90 % power), and checked on held-out seeds (README,
the promotion gate)."""
MIN_SYMBOL_TRADES = 30
"""``newey-west-symbols``: a symbol with fewer nonzero differences is weighed by the scale
of all the differences, not its own (a median of a few values is noise)."""
KIEFER_VOGELSANG = (
    (0.90, (1.2816, 1.3040, 0.5135, -0.3386)),
    (0.95, (1.6449, 2.1859, 0.3142, -0.3427)),
    (0.975, (1.9600, 2.9694, 0.4160, -0.5324)),
    (0.99, (2.3263, 4.1277, 0.2456, -0.4052)),
)
"""Kiefer and Vogelsang's (2005) fixed-b critical values of the Bartlett-kernel t statistic:
the ``q`` quantile is ``c0 + c1 b + c2 b^2 + c3 b^3`` for the bandwidth ``b`` as a share of
the sample (c0 is the normal quantile)."""


def max_drawdown_pct(equity: NDArray[np.float64], initial: float = INITIAL_EQUITY) -> float:
    """Largest fall of the equity curve from its running peak, in percent of that peak."""
    curve = np.r_[initial, np.asarray(equity, dtype=np.float64)]
    peak = np.maximum.accumulate(curve)
    return float(np.max((peak - curve) / peak) * 100.0)


def per_trade_sharpe(pnl: NDArray[np.float64]) -> float:
    """Mean over population std of per-trade pnl (not annualised); 0 under 2 trades or flat."""
    if pnl.size < 2 or float(np.std(pnl)) == 0.0:
        return 0.0
    return float(np.mean(pnl) / np.std(pnl))


def policy_metrics(
    result: SimulationResult, n_meta_states: int = 972, n_sizing_states: int = 243
) -> dict[str, float]:
    """The evaluation metrics of one simulated run (empty run: zeros)."""
    n = int(result.pnl_pct.size)
    pnl = result.pnl_pct
    meta_pairs = np.unique(result.meta_state * meta_space.n + result.meta_action).size
    sizing_pairs = np.unique(result.sizing_state * sizing_space.n + result.sizing_action).size
    out = {
        "n_trades": float(n),
        "total_pnl_pct": float(pnl.sum()) if n else 0.0,
        "mean_pnl_pct": float(pnl.mean()) if n else 0.0,
        "sharpe": per_trade_sharpe(pnl),
        "max_drawdown_pct": max_drawdown_pct(result.equity) if n else 0.0,
        "win_rate": float((pnl > 0).mean()) if n else 0.0,
        "liquidations": float(result.liquidated.sum()),
        "meta_mean_reward": float(result.meta_reward.mean()) if n else 0.0,
        "sizing_mean_reward": float(result.sizing_reward.mean()) if n else 0.0,
        "meta_visited_share": meta_pairs / (n_meta_states * meta_space.n),
        "sizing_visited_share": sizing_pairs / (n_sizing_states * sizing_space.n),
        "final_equity": float(result.equity[-1]) if n else INITIAL_EQUITY,
        "bust": float(n > 0 and float(result.equity.min()) <= BUST_EQUITY),
    }
    return out


def visited_share(q: NDArray[np.float64]) -> float:
    """Share of a Q-table's state-action pairs that learning has touched (non-zero)."""
    return float(np.count_nonzero(q) / q.size)


class Bootstrap(StrEnum):
    """How the promotion gate builds the interval of the mean per-trade difference."""

    NEWEY_WEST_SYMBOLS = "newey-west-symbols"
    """The default: the Newey-West t interval of the symbol-weighted mean difference
    (each symbol's trades weighed by the inverse of its median absolute difference), its
    long-run variance the larger of the one along each symbol's own decisions and the one
    over all decisions in time order, its bandwidth at least ``BANDWIDTH_SHARE`` of the
    trades (``symbol_hac_interval``)."""
    NEWEY_WEST = "newey-west"
    """Not a resampling: the t interval of the mean with Newey and West's (Bartlett)
    long-run variance, its bandwidth the larger of Politis and White's estimate and
    ``BANDWIDTH_FLOOR`` x sqrt(n), read with Kiefer and Vogelsang's fixed-b critical
    values (``hac_interval``; the default until the symbol-weighted one measured better
    on both false promotions and power)."""

    STATIONARY = "stationary"
    """Politis and Romano's stationary bootstrap: blocks of geometrically distributed
    length, their mean chosen from the data (the default until the gate measured too
    many false promotions with it: README, the promotion gate)."""
    CIRCULAR = "circular"
    """Blocks of one length chosen from the data, wrapping from the end to the start."""
    IID = "iid"
    """Every trade drawn on its own: the original gate. It assumes independent trades and
    promotes too often when the differences persist (README, the promotion gate)."""


class MeanInterval(NamedTuple):
    """A bootstrap interval of a mean difference and what the resampling assumed."""

    low: float
    high: float
    block_length: float
    """Mean length of the resampled blocks (1 for ``iid``; ``newey-west``: its bandwidth)."""
    effective_n: float
    """How many independent trades would give the mean the spread the bootstrap found
    (see ``bootstrap_interval``)."""
    estimate: float = math.nan
    """The mean the interval is about: the plain mean of the differences, or for
    ``newey-west-symbols`` their symbol-weighted mean (NaN: not given)."""


@dataclass(frozen=True)
class PromotionDecision:
    """The promotion gate's verdict and the figures behind it."""

    promote: bool
    metric: str
    candidate_value: float
    champion_value: float
    difference: float
    """The candidate's mean metric minus the champion's, over the common trades: what
    ``margin`` applies to."""
    estimate: float
    """The mean difference the interval is centred on: ``difference`` itself, or for
    ``newey-west-symbols`` the symbol-weighted mean (``symbol_weights``)."""
    ci_low: float
    ci_high: float
    margin: float
    n: int
    champion: str
    """What the candidate was compared against (``production vN`` or ``logged``)."""
    reason: str
    bootstrap: str
    """The resampling of the interval (``Bootstrap``)."""
    block_length: float
    """Mean block length the bootstrap used (1: trades resampled one by one;
    ``newey-west``: the bandwidth of its long-run variance, in trades)."""
    effective_n: float
    """Effective number of independent trades behind the interval (``bootstrap_interval``)."""
    guardrail: str
    """The guardrails that refused a candidate its metric would promote (``pnl``,
    ``drawdown``, or both comma-separated); empty when none did."""
    pnl_tolerance: float
    """How far the candidate's mean pnl per trade may fall below the champion's."""
    drawdown_tolerance: float
    """How far the candidate's max drawdown may exceed the champion's, in points."""

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for tags, logs and printing."""
        return asdict(self)


def _per_decision(
    result: SimulationResult, metric: str
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """The run's decisions (ascending, each once: its last trade) and their ``metric``."""
    if metric not in METRICS:
        raise ValueError(f"metric={metric!r}: expected one of {METRICS}")
    decisions = np.asarray(result.decision, dtype=np.int64)
    values = np.asarray(getattr(result, metric), dtype=np.float64)
    last = decisions.size - 1 - np.unique(decisions[::-1], return_index=True)[1]
    return decisions[last], values[last]


@numba.njit(cache=True, nogil=True, parallel=True)
def _bootstrap_kernel(diff: NDArray[np.float64], seeds: NDArray[np.uint64]) -> NDArray[np.float64]:
    n = diff.size
    means = np.empty(seeds.size, np.float64)
    for b in numba.prange(seeds.size):
        state = seeds[b]
        total = 0.0
        for _ in range(n):
            draw, state = uniform_step(state)
            total += diff[np.int64(draw * n)]
        means[b] = total / n
    return means


def _bootstrap_means(diff: NDArray[np.float64], n_boot: int, seed: int) -> NDArray[np.float64]:
    """Means of ``n_boot`` resamples of ``diff`` with replacement, resample b on its own stream.

    Resample b draws its indices from the splitmix64 generator seeded with
    ``stream_seed(seed, b)`` (``rlv2.rng``) and sums in draw order, so the result
    does not depend on the thread count.
    """
    seeds = np.asarray([stream_seed(seed, b) for b in range(n_boot)], dtype=np.uint64)
    return _bootstrap_kernel(np.ascontiguousarray(diff, dtype=np.float64), seeds)


def _paired(
    candidate: SimulationResult, champion: SimulationResult, metric: str
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    """The decisions both runs traded (ascending) and each run's ``metric`` on them."""
    cand_ids, cand_values = _per_decision(candidate, metric)
    champ_ids, champ_values = _per_decision(champion, metric)
    ids, in_cand, in_champ = np.intersect1d(
        cand_ids, champ_ids, assume_unique=True, return_indices=True
    )
    return ids, cand_values[in_cand], champ_values[in_champ]


def paired_differences(
    candidate: SimulationResult, champion: SimulationResult, metric: str
) -> NDArray[np.float64]:
    """Candidate minus champion ``metric`` on each decision both traded, in decision order:
    what ``compare_policies`` resamples."""
    _, a, b = _paired(candidate, champion, metric)
    return a - b


def paired_groups(
    candidate: SimulationResult, champion: SimulationResult, groups: NDArray[np.int64] | None
) -> NDArray[np.int64] | None:
    """The group (symbol code) of each of ``paired_differences``' trades; ``groups`` is
    indexed by decision, as the runs' ``decision`` (None: None)."""
    if groups is None:
        return None
    ids, _, _ = _paired(candidate, champion, "pnl_pct")
    return np.asarray(groups, dtype=np.int64)[ids]


def symbol_weights(
    diff: NDArray[np.float64], groups: NDArray[np.int64], min_trades: int = MIN_SYMBOL_TRADES
) -> NDArray[np.float64]:
    """Per trade, the inverse of its symbol's scale, the weights averaging 1.

    A symbol's scale is the median of its nonzero absolute differences (trades where the
    two policies did the same thing differ by 0 and say nothing of the spread); a symbol
    with fewer than ``min_trades`` nonzero ones takes the scale of all the differences;
    with no nonzero difference at all every weight is 1. *Why:* a symbol
    whose trades move ten times as much (daily index bars beside hourly FX) would
    otherwise decide the mean alone, and the gate would hear only its few trades.
    """
    diff = np.asarray(diff, dtype=np.float64)
    groups = np.asarray(groups, dtype=np.int64)
    if diff.shape != groups.shape:
        raise ValueError(f"groups has shape {groups.shape}, the differences {diff.shape}")

    def scale(x: NDArray[np.float64], fewest: int) -> float:
        nonzero = np.abs(x[x != 0.0])
        return float(np.median(nonzero)) if nonzero.size >= max(fewest, 1) else 0.0

    pooled = scale(diff, 1)
    if pooled == 0.0:
        return np.ones_like(diff)
    weights = np.empty_like(diff)
    for g in np.unique(groups):
        member = groups == g
        own = scale(diff[member], min_trades)
        weights[member] = 1.0 / (own if own > 0.0 else pooled)
    return weights / weights.mean()


def _politis_white(diff: NDArray[np.float64], column: str) -> float:
    """Politis and White's estimate (``optimal_block_length``'s ``column``), NaN if undefined."""
    # imported here: arch takes seconds to import, and the CLI's checks run before any gate
    from arch.bootstrap import optimal_block_length

    with np.errstate(divide="ignore", invalid="ignore"):  # undefined: NaN, handled by callers
        frame = optimal_block_length(diff)
    columns = [str(c) for c in frame.columns]  # stationary, circular
    return float(frame.to_numpy(dtype=np.float64)[0, columns.index(column)])


def block_length(diff: NDArray[np.float64], method: Bootstrap) -> float:
    """The block length ``method`` resamples ``diff`` with, estimated from ``diff`` itself.

    Politis and White's (2004, corrected 2009) estimate of the length that minimises the
    error of the bootstrap's variance of the mean (``arch.bootstrap.optimal_block_length``:
    its ``stationary`` column is a mean length, its ``circular`` one is rounded up),
    kept within ``[1, n]``; 1 for ``iid``, under ``MIN_BLOCK_TRADES`` trades, and where
    the estimate is undefined (no spread). ``newey-west``: its bandwidth
    (``hac_bandwidth``).
    """
    if method is Bootstrap.NEWEY_WEST:
        return hac_bandwidth(diff)
    if method is Bootstrap.NEWEY_WEST_SYMBOLS:
        return _symbol_long_run_variance(*_symbol_series(diff, None), BANDWIDTH_SHARE)[1]
    if method is Bootstrap.IID or diff.size < MIN_BLOCK_TRADES:
        return 1.0
    estimate = _politis_white(diff, method.value)
    if not math.isfinite(estimate):
        return 1.0
    length = min(max(estimate, 1.0), float(diff.size))
    return float(math.ceil(length)) if method is Bootstrap.CIRCULAR else length


def hac_bandwidth(
    diff: NDArray[np.float64], floor: float = BANDWIDTH_FLOOR, share: float = 0.0
) -> float:
    """The Newey-West bandwidth for ``diff``, in trades: the larger of Politis and White's
    circular block length (the Bartlett kernel's own rule, unrounded), ``floor`` x
    sqrt(n) and ``share`` x n, kept within ``[1, n]``."""
    n = diff.size
    estimate = _politis_white(diff, "circular") if n >= MIN_BLOCK_TRADES else math.nan
    floor = max(floor * math.sqrt(n), share * n)
    length = max(estimate, floor) if math.isfinite(estimate) else floor
    return float(min(max(length, 1.0), float(n)))


def bartlett_long_run_variance(diff: NDArray[np.float64], bandwidth: float) -> float:
    """Newey and West's long-run variance of ``diff``: ``g0 + 2 sum_{k < M} (1 - k / M) gk``
    with ``gk`` the autocovariances (over n) of the demeaned series, ``M = bandwidth``;
    never negative."""
    n = diff.size
    centred = np.asarray(diff, dtype=np.float64) - float(np.mean(diff))
    size = 1 << (2 * n - 1).bit_length()  # zero-padded: the FFT's products are not circular
    spectrum = np.fft.rfft(centred, size)
    autocov = np.fft.irfft(spectrum * np.conj(spectrum), size)[:n] / n
    lags = np.arange(1, min(math.ceil(bandwidth), n))
    return float(autocov[0] + 2.0 * np.sum((1.0 - lags / bandwidth) * autocov[lags]))


def fixed_b_critical_value(b: float, quantile: float) -> float:
    """The ``quantile`` of the Bartlett-kernel t statistic with bandwidth ``b`` x n under
    fixed-b asymptotics (Kiefer and Vogelsang 2005, ``KIEFER_VOGELSANG``).

    Between (and beyond) their tabulated quantiles, each polynomial coefficient is
    interpolated (extrapolated) linearly in the normal quantile, from 0 at the median.
    """
    if not 0.5 <= quantile < 1.0:
        raise ValueError(f"quantile={quantile} must be in [0.5, 1)")
    z = NormalDist().inv_cdf(quantile)
    knots = np.asarray([0.0, *(row[1][0] for row in KIEFER_VOGELSANG)], dtype=np.float64)
    value = z
    for power in (1, 2, 3):
        coefficient = np.asarray(
            [0.0, *(row[1][power] for row in KIEFER_VOGELSANG)], dtype=np.float64
        )
        if z <= knots[-1]:
            c = float(np.interp(z, knots, coefficient).item())
        else:
            slope = (coefficient[-1] - coefficient[-2]) / (knots[-1] - knots[-2])
            c = float(coefficient[-1] + slope * (z - knots[-1]))
        value += c * b**power
    return float(value)


def hac_interval(
    diff: NDArray[np.float64], confidence: float, floor: float = BANDWIDTH_FLOOR
) -> MeanInterval:
    """The ``confidence`` t interval of the mean of ``diff`` (in time order) with Newey and
    West's long-run variance and Kiefer and Vogelsang's fixed-b critical value.

    ``mean +- c * sqrt(lrv / n)``: ``lrv`` is ``bartlett_long_run_variance`` at
    ``hac_bandwidth`` (with ``floor``), ``c`` the ``(1 + confidence) / 2`` quantile of
    the statistic with that bandwidth as a share of n (``fixed_b_critical_value``), which counts the
    long-run variance's own estimation error (a wide bandwidth estimates it from few
    independent stretches, so the critical value grows with it). ``block_length`` is the
    bandwidth; ``effective_n`` is n x variance / long-run variance.
    """
    n = diff.size
    bandwidth = hac_bandwidth(diff, floor)
    lrv = bartlett_long_run_variance(diff, bandwidth)
    mean = float(np.mean(diff))
    half = fixed_b_critical_value(bandwidth / n, (1.0 + confidence) / 2.0) * math.sqrt(lrv / n)
    effective_n = n * float(np.var(diff)) / lrv if lrv > 0.0 else float(n)
    return MeanInterval(mean - half, mean + half, bandwidth, effective_n, mean)


def _by_symbol(groups: NDArray[np.int64]) -> NDArray[np.int64]:
    """The order that puts each symbol's trades together, each in time order."""
    return np.argsort(np.asarray(groups, dtype=np.int64), kind="stable")


def _symbol_series(
    diff: NDArray[np.float64], groups: NDArray[np.int64] | None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The symbol-weighted differences in time order and in symbol order."""
    groups = np.zeros(diff.size, np.int64) if groups is None else groups
    weighted = np.asarray(diff, dtype=np.float64) * symbol_weights(diff, groups)
    return weighted, weighted[_by_symbol(groups)]


def _symbol_long_run_variance(
    weighted: NDArray[np.float64], by_symbol: NDArray[np.float64], share: float
) -> tuple[float, float]:
    """The larger Bartlett long-run variance of the two orders, with its bandwidth."""
    estimates: list[tuple[float, float]] = []
    for series in (by_symbol, weighted):
        bandwidth = hac_bandwidth(series, 0.0, share)
        estimates.append((bartlett_long_run_variance(series, bandwidth), bandwidth))
    return max(estimates)


def symbol_hac_interval(
    diff: NDArray[np.float64],
    groups: NDArray[np.int64] | None,
    confidence: float,
    share: float = BANDWIDTH_SHARE,
) -> MeanInterval:
    """The ``confidence`` interval of the symbol-weighted mean of ``diff`` (in time order;
    ``groups`` each trade's symbol code, None: one symbol).

    The trades are weighed by ``symbol_weights`` (mean 1, so the weighted mean is in the
    metric's units). Its long-run variance is the larger of two Newey-West estimates:
    along each symbol's own decisions (the symbols one after another, each in time
    order), where a model's errors persist, and over all decisions in time order, where
    symbols that move together would show. Each has its bandwidth ``hac_bandwidth`` with
    no sqrt(n) floor and at least ``share`` x n; the critical value is Kiefer and
    Vogelsang's fixed-b one at the bandwidth of the larger. ``block_length`` is that
    bandwidth, ``effective_n`` n x variance / long-run variance of the weighted series.
    """
    weighted, by_symbol = _symbol_series(diff, groups)
    n = weighted.size
    lrv, bandwidth = _symbol_long_run_variance(weighted, by_symbol, share)
    mean = float(np.mean(weighted))
    half = fixed_b_critical_value(bandwidth / n, (1.0 + confidence) / 2.0) * math.sqrt(lrv / n)
    effective_n = n * float(np.var(weighted)) / lrv if lrv > 0.0 else float(n)
    return MeanInterval(mean - half, mean + half, bandwidth, effective_n, mean)


def _resampled_means(
    diff: NDArray[np.float64],
    method: Bootstrap,
    n_boot: int,
    seed: int,
    groups: NDArray[np.int64] | None = None,
) -> tuple[NDArray[np.float64], float]:
    """The means of ``n_boot`` resamples of ``diff`` by ``method``, and its block length
    (``newey-west``: the circular block bootstrap at its bandwidth, for the chart;
    ``newey-west-symbols``: the same, of the symbol-weighted differences in symbol order)."""
    if method is Bootstrap.NEWEY_WEST_SYMBOLS:
        weighted, diff = _symbol_series(diff, groups)
        length = _symbol_long_run_variance(weighted, diff, BANDWIDTH_SHARE)[1]
    else:
        length = block_length(diff, method)
    if method is Bootstrap.IID:
        return _bootstrap_means(diff, n_boot, seed), length
    from arch.bootstrap import CircularBlockBootstrap, StationaryBootstrap

    if method is Bootstrap.STATIONARY:
        # a mean block length is a real number (each block ends with p = 1 / length);
        # arch annotates it as int
        sampler = StationaryBootstrap(length, diff, seed=seed)  # pyright: ignore[reportArgumentType]
    else:
        sampler = CircularBlockBootstrap(math.ceil(length), diff, seed=seed)
    return sampler.apply(np.mean, n_boot)[:, 0], length


def bootstrap_means(
    diff: NDArray[np.float64],
    n_boot: int,
    seed: int,
    method: Bootstrap | str = Bootstrap.NEWEY_WEST_SYMBOLS,
    groups: NDArray[np.int64] | None = None,
) -> NDArray[np.float64]:
    """The resampled means the gate's interval is read from (``bootstrap_interval``, same
    arguments, same draws): what its chart shows. ``newey-west`` reads no resamples: its
    chart shows the circular block bootstrap at its bandwidth, whose variance of the mean
    is, up to edge terms, the Bartlett long-run variance over n (Kunsch 1989);
    ``newey-west-symbols`` likewise, of the symbol-weighted differences (``groups``: each
    trade's symbol code) with each symbol's trades together."""
    method = parse_enum(Bootstrap, str(method), "bootstrap")
    return _resampled_means(diff, method, n_boot, seed, groups)[0]


def bootstrap_interval(
    diff: NDArray[np.float64],
    *,
    method: Bootstrap = Bootstrap.NEWEY_WEST_SYMBOLS,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    groups: NDArray[np.int64] | None = None,
) -> MeanInterval:
    """Interval of the mean of ``diff`` (in time order) by ``method``: ``newey-west`` is
    ``hac_interval``, ``newey-west-symbols`` ``symbol_hac_interval`` with ``groups`` (each
    trade's symbol code; None: one symbol), neither using ``n_boot`` or ``seed``; the
    others resample, as follows.

    A block bootstrap resamples runs of consecutive differences (``block_length``), so a
    difference that persists over many trades (a model wrong for weeks) counts as the
    few pieces of evidence it is. Its interval is the basic (reverse-percentile) one,
    ``[2 m - q_high, 2 m - q_low]`` of the bootstrap means' quantiles (arch's default
    ``conf_int`` method): per-trade differences are heavy-tailed (a few large trades),
    the mean's error is skewed the way the bootstrap means are, and the basic interval
    puts the long tail on the side the error lies. On the no-edge planted histories the
    percentile interval of the same resamples promoted about twice as often (README,
    the promotion gate). ``iid`` is the original gate: trades drawn one by one from the
    splitmix64 streams (``_bootstrap_means``), percentile interval.

    Draws come from ``np.random.default_rng(seed)`` (``iid``: the streams of ``seed``),
    so a decision is reproducible.

    ``effective_n`` = population variance of ``diff`` / variance of the bootstrap means:
    the number of independent trades whose mean would be as uncertain as the bootstrap
    found this one. The bootstrap's variance of the mean estimates the long-run variance
    over n, so this is n divided by the variance inflation the dependence implies (about
    n for independent trades, fewer when they persist, more when neighbours offset each
    other). It is not ``n / block_length``: the block length is tuned to estimate that
    variance (it grows like n^(1/3) for a fixed dependence), it does not count
    independent stretches. With no spread in ``diff`` the interval is its one value and
    ``effective_n`` is n.
    """
    n = diff.size
    if n_boot < 1:
        raise ValueError(f"n_boot={n_boot} must be >= 1")
    if n == 0:
        raise ValueError("diff is empty: no common trades to bootstrap")
    if float(np.ptp(diff)) == 0.0:
        value = float(diff[0])
        return MeanInterval(value, value, 1.0, float(n), value)
    if method is Bootstrap.NEWEY_WEST:
        return hac_interval(diff, confidence)
    if method is Bootstrap.NEWEY_WEST_SYMBOLS:
        return symbol_hac_interval(diff, groups, confidence)
    means, length = _resampled_means(diff, method, n_boot, seed)
    tail = (1.0 - confidence) / 2.0 * 100.0
    q_low, q_high = (float(x) for x in np.percentile(means, [tail, 100.0 - tail]))
    if method is Bootstrap.IID:
        low, high = q_low, q_high
    else:
        mean = float(diff.mean())
        low, high = 2.0 * mean - q_high, 2.0 * mean - q_low
    spread = float(np.var(means))
    effective_n = float(np.var(diff)) / spread if spread > 0.0 else float(n)
    return MeanInterval(low, high, length, effective_n, float(diff.mean()))


def guardrail_breaches(
    candidate: SimulationResult,
    champion: SimulationResult,
    champion_name: str,
    pnl_tolerance: float,
    drawdown_tolerance: float,
) -> dict[str, str]:
    """The guardrails the candidate breaks, each with its explanation (empty: none).

    ``pnl``: its mean pnl per trade is more than ``pnl_tolerance`` below the champion's;
    ``drawdown``: its max drawdown exceeds the champion's by more than
    ``drawdown_tolerance`` points. Both over each whole run, the figures
    ``policy_metrics`` reports as ``mean_pnl_pct`` and ``max_drawdown_pct``.
    """
    breaches: dict[str, str] = {}
    cand_pnl = float(candidate.pnl_pct.mean()) if candidate.pnl_pct.size else 0.0
    champ_pnl = float(champion.pnl_pct.mean()) if champion.pnl_pct.size else 0.0
    if cand_pnl < champ_pnl - pnl_tolerance:
        breaches["pnl"] = (
            f"guardrail pnl: mean pnl per trade {cand_pnl:.4g} is {champ_pnl - cand_pnl:.4g} "
            f"below {champion_name}'s {champ_pnl:.4g} (tolerance {pnl_tolerance:g})"
        )
    cand_dd = max_drawdown_pct(candidate.equity) if candidate.equity.size else 0.0
    champ_dd = max_drawdown_pct(champion.equity) if champion.equity.size else 0.0
    if cand_dd > champ_dd + drawdown_tolerance:
        breaches["drawdown"] = (
            f"guardrail drawdown: max drawdown {cand_dd:.4g} % is {cand_dd - champ_dd:.4g} "
            f"points above {champion_name}'s {champ_dd:.4g} % (tolerance {drawdown_tolerance:g})"
        )
    return breaches


def compare_policies(
    candidate: SimulationResult,
    champion: SimulationResult,
    *,
    metric: str = "pnl_pct",
    margin: float = 0.0,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    champion_name: str = "production",
    bootstrap: Bootstrap | str = Bootstrap.NEWEY_WEST_SYMBOLS,
    pnl_tolerance: float = math.inf,
    drawdown_tolerance: float = math.inf,
    groups: NDArray[np.int64] | None = None,
) -> PromotionDecision:
    """Champion/challenger on the same decisions: promote only on a significant win.

    The candidate wins when its mean per-trade ``metric`` exceeds the champion's by at
    least ``margin`` and the ``confidence`` interval of the mean difference
    (``bootstrap_interval`` over the decisions both traded, in time order, resampled by
    ``bootstrap``; ``groups``: each decision's symbol code, indexed as the runs'
    ``decision``, for ``newey-west-symbols``) lies above zero. A winner is still refused
    when it breaks a guardrail (``guardrail_breaches``; the tolerances default to
    infinity, none: the pipeline's come from ``TrainConfig``). A candidate whose account
    goes bust is refused.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence} must be in (0, 1)")
    method = parse_enum(Bootstrap, str(bootstrap), "bootstrap")
    context: dict[str, Any] = {
        "metric": metric,
        "margin": margin,
        "champion": champion_name,
        "bootstrap": method.value,
        "pnl_tolerance": pnl_tolerance,
        "drawdown_tolerance": drawdown_tolerance,
    }
    if candidate.equity.size and candidate.equity.min() <= BUST_EQUITY:
        return _refused(
            context,
            int(candidate.equity.size),
            "the candidate's account went bust on the holdout",
        )
    ids, a, b = _paired(candidate, champion, metric)
    n = ids.size
    if n < 2:
        return _refused(context, n, f"only {n} common trades on the holdout: nothing to compare")
    diff = a - b
    interval = bootstrap_interval(
        diff,
        method=method,
        n_boot=int(n_boot),
        confidence=confidence,
        seed=seed,
        groups=None if groups is None else np.asarray(groups, dtype=np.int64)[ids],
    )
    mean_diff = float(diff.mean())
    wins = mean_diff >= margin and interval.low > 0.0
    breaches = (
        guardrail_breaches(candidate, champion, champion_name, pnl_tolerance, drawdown_tolerance)
        if wins
        else {}
    )
    if breaches:
        reason = f"wins on {metric} by {mean_diff:.4g} (CI above 0) but " + "; ".join(
            breaches.values()
        )
    elif wins:
        reason = f"beats {champion_name} by {mean_diff:.4g} >= margin {margin:g}, CI above 0"
    elif mean_diff < margin:
        reason = f"difference {mean_diff:.4g} below margin {margin:g}"
    else:
        about = (
            f" of the symbol-weighted mean {interval.estimate:.4g}"
            if method is Bootstrap.NEWEY_WEST_SYMBOLS
            else ""
        )
        reason = (
            f"confidence interval [{interval.low:.4g}, {interval.high:.4g}]{about} "
            "does not exclude 0"
        )
    return PromotionDecision(
        **context,
        promote=wins and not breaches,
        candidate_value=float(a.mean()),
        champion_value=float(b.mean()),
        difference=mean_diff,
        estimate=interval.estimate,
        ci_low=interval.low,
        ci_high=interval.high,
        n=n,
        reason=reason,
        block_length=interval.block_length,
        effective_n=interval.effective_n,
        guardrail=",".join(breaches),
    )


def _refused(context: dict[str, Any], n: int, reason: str) -> PromotionDecision:
    """A refusal before any comparison: every figure 0."""
    return PromotionDecision(
        **context,
        promote=False,
        candidate_value=0.0,
        champion_value=0.0,
        difference=0.0,
        estimate=0.0,
        ci_low=0.0,
        ci_high=0.0,
        n=n,
        reason=reason,
        block_length=0.0,
        effective_n=0.0,
        guardrail="",
    )
