"""How good a policy is on a window, and whether a challenger beats the champion.

Metrics of a simulated run (``rlv2.replay.SimulationResult``): total and mean pnl per
trade, Sharpe of per-trade pnl, max drawdown of the equity curve, win rate, mean reward
per agent, action distribution and the share of state-action pairs visited. The
promotion gate compares two policies on the same decisions with a paired bootstrap.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rlv2.actions import meta_space, sizing_space
from rlv2.outcomes import INITIAL_EQUITY
from rlv2.replay import SimulationResult

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
    }
    return out


def action_distribution(result: SimulationResult) -> dict[str, dict[str, int]]:
    """How often each action was taken, by readable label, per agent."""
    meta = np.bincount(result.meta_action, minlength=meta_space.n)
    sizing = np.bincount(result.sizing_action, minlength=sizing_space.n)
    return {
        "meta_strategy": {meta_space.label(a): int(c) for a, c in enumerate(meta) if c},
        "position_sizing": {sizing_space.label(a): int(c) for a, c in enumerate(sizing) if c},
    }


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


def _per_decision(result: SimulationResult, metric: str) -> dict[int, float]:
    if metric not in METRICS:
        raise ValueError(f"metric={metric!r}: expected one of {METRICS}")
    values = getattr(result, metric)
    return {int(d): float(v) for d, v in zip(result.decision, values, strict=True)}


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
        return PromotionDecision(
            False,
            metric,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            margin,
            int(candidate.equity.size),
            champion_name,
            "the candidate's account went bust on the holdout",
        )
    cand = _per_decision(candidate, metric)
    champ = _per_decision(champion, metric)
    common = sorted(set(cand) & set(champ))
    n = len(common)
    if n < 2:
        return PromotionDecision(
            False,
            metric,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            margin,
            n,
            champion_name,
            f"only {n} common trades on the holdout: nothing to compare",
        )
    a = np.asarray([cand[d] for d in common])
    b = np.asarray([champ[d] for d in common])
    diff = a - b
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
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
