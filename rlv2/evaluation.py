"""How good a policy is on a window, and whether a challenger beats the champion.

Metrics of a simulated run (``rlv2.replay.SimulationResult``): total and mean pnl per
trade, Sharpe of per-trade pnl, max drawdown of the equity curve, win rate, mean reward
per agent, action distribution and the share of state-action pairs visited. The
promotion gate compares two policies on the same decisions with a paired bootstrap.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numba
import numpy as np
from numpy.typing import NDArray

from rlv2.actions import meta_space, sizing_space
from rlv2.outcomes import BUST_EQUITY, INITIAL_EQUITY
from rlv2.replay import SimulationResult
from rlv2.rng import stream_seed, uniform_step

METRICS = ("pnl_pct", "meta_reward", "sizing_reward")
"""Per-trade quantities the promotion gate can compare."""


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


@dataclass(frozen=True)
class PromotionDecision:
    """The promotion gate's verdict and the figures behind it."""

    promote: bool
    metric: str
    candidate_value: float
    champion_value: float
    difference: float
    ci_low: float
    ci_high: float
    margin: float
    n: int
    champion: str
    """What the candidate was compared against (``production vN`` or ``logged``)."""
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for tags, logs and printing."""
        return asdict(self)

    @classmethod
    def refused(
        cls, metric: str, margin: float, n: int, champion: str, reason: str
    ) -> PromotionDecision:
        """A refusal before any comparison: every figure 0."""
        return cls(False, metric, 0.0, 0.0, 0.0, 0.0, 0.0, margin, n, champion, reason)


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


def bootstrap_means(diff: NDArray[np.float64], n_boot: int, seed: int) -> NDArray[np.float64]:
    """The resampled means of ``diff`` whose percentiles are the gate's interval (for its chart)."""
    return _bootstrap_means(diff, n_boot, seed)


def paired_differences(
    candidate: SimulationResult, champion: SimulationResult, metric: str
) -> NDArray[np.float64]:
    """Candidate minus champion ``metric`` on each decision both traded, in decision order:
    what ``compare_policies`` resamples."""
    cand_ids, cand_values = _per_decision(candidate, metric)
    champ_ids, champ_values = _per_decision(champion, metric)
    _, in_cand, in_champ = np.intersect1d(
        cand_ids, champ_ids, assume_unique=True, return_indices=True
    )
    return cand_values[in_cand] - champ_values[in_champ]


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
) -> PromotionDecision:
    """Champion/challenger on the same decisions: promote only on a significant win.

    The candidate wins when its mean per-trade ``metric`` exceeds the champion's by at
    least ``margin`` and the paired-bootstrap ``confidence`` interval of the mean
    difference (percentile method, ``n_boot`` resamples of the decisions both traded)
    lies above zero. A candidate whose account goes bust is refused.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence} must be in (0, 1)")
    if candidate.equity.size and candidate.equity.min() <= 0.0:
        return PromotionDecision.refused(
            metric,
            margin,
            int(candidate.equity.size),
            champion_name,
            "the candidate's account went bust on the holdout",
        )
    cand_ids, cand_values = _per_decision(candidate, metric)
    champ_ids, champ_values = _per_decision(champion, metric)
    _, in_cand, in_champ = np.intersect1d(
        cand_ids, champ_ids, assume_unique=True, return_indices=True
    )
    n = in_cand.size
    if n < 2:
        return PromotionDecision.refused(
            metric,
            margin,
            n,
            champion_name,
            f"only {n} common trades on the holdout: nothing to compare",
        )
    a = cand_values[in_cand]
    b = champ_values[in_champ]
    diff = a - b
    if n_boot < 1:
        raise ValueError(f"n_boot={n_boot} must be >= 1")
    means = _bootstrap_means(diff, int(n_boot), seed)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = (float(x) for x in np.percentile(means, [tail, 100.0 - tail]))
    mean_diff = float(diff.mean())
    promote = mean_diff >= margin and low > 0.0
    if promote:
        reason = f"beats {champion_name} by {mean_diff:.4g} >= margin {margin:g}, CI above 0"
    elif mean_diff < margin:
        reason = f"difference {mean_diff:.4g} below margin {margin:g}"
    else:
        reason = f"confidence interval [{low:.4g}, {high:.4g}] does not exclude 0"
    return PromotionDecision(
        promote,
        metric,
        float(a.mean()),
        float(b.mean()),
        mean_diff,
        low,
        high,
        margin,
        n,
        champion_name,
        reason,
    )
