"""A second opinion on a candidate's simulated holdout value, from the logged propensities.

The promotion gate judges a candidate by simulating it on the holdout (``rlv2.replay``),
which rests on the replay's rules for what an action changes and on its account model.
When the live system logs each agent's propensity (``meta_action_prob``,
``sizing_action_prob``: the behaviour's probability of the action it took, in the state
it took it in), the logged trades estimate the candidate's value without those rules:
the self-normalised inverse-propensity-score (SNIPS) estimate. It is an alarm, never a
gate: when the two disagree beyond the estimate's error, the simulation (or the logged
propensities) deserves a look.

What is estimated. For one agent, its candidate's greedy policy in the state the agent
logged, the other agent acting as the behaviour did: the mean per-trade SPEC A1 reward of
that agent over the logged trades. A logged trade counts when its logged action is the
candidate's greedy action in its logged state, with weight ``1 / propensity``; the others
count 0:

    w_i = 1{a_i = π(s_i)} / p_i,        SNIPS = Σ w_i r_i / Σ w_i.

Its standard error is the delta method's for a ratio of two means,
``SE = sqrt(Σ w_i² (r_i − SNIPS)²) / Σ w_i``, which treats the trades as independent
(persistent signals make it optimistic); the effective sample size is Kish's
``(Σ w)² / Σ w²``.

What it is compared with. The simulated replay's value of the same thing: the mean, over
the same decisions, of the counterfactual reward of the candidate's greedy action (the
rewards the simulated mode's compiled path trains on, ``rlv2.replay.kernel_inputs``),
the account and the other agent as logged. So a disagreement beyond the error says that
the replay's outcome rules do not reproduce what the logged trades earned for the actions
this candidate takes (or that the propensities are wrong). The gate's own simulation also
recomputes the account from the simulated trades (the sizing reward's exposure reads
every open position's size) and plays production as the other agent; no per-trade
estimate can see those effects of a policy on the other trades, so they are left out of
the comparison (``tests/test_off_policy.py`` shows the size of the first).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rlv2.domain import Agent, ReplayMode, agent_spec
from rlv2.qlearning import greedy_policy
from rlv2.records import Transitions
from rlv2.replay import ReplayConfig, SimulationInputs, kernel_inputs
from rlv2.replay.logged import logged_rewards

IPS_ALARM_SE = 2.0
"""The alarm: the simulated value and the SNIPS estimate disagree when they are more than
this many standard errors of the estimate apart (about a 5 % false alarm rate for
independent trades, more when trades are correlated)."""


class SnipsEstimate(NamedTuple):
    """A self-normalised IPS estimate of a target policy's mean per-trade value."""

    value: float
    """Σ w r / Σ w; NaN when no logged action is the target's."""
    se: float
    """Delta-method standard error; NaN under two matching trades."""
    ess: float
    """Effective sample size (Σ w)² / Σ w² (0 without a match)."""
    n: int
    """Logged trades with a propensity."""
    matched: int
    """Of them, those whose logged action is the target policy's."""


def snips(
    rewards: ArrayLike,
    logged_actions: ArrayLike,
    target_actions: ArrayLike,
    propensities: ArrayLike,
) -> SnipsEstimate:
    """The SNIPS estimate of the target policy's mean reward from logged trades.

    One entry per logged trade: its reward, its logged action, the target policy's action
    in its logged state, and the behaviour's probability of the logged action (NaN: not
    logged; the trade is left out). Raises ValueError for arrays of different lengths or
    a propensity outside (0, 1].
    """
    r = np.asarray(rewards, dtype=np.float64).reshape(-1)
    a = np.asarray(logged_actions, dtype=np.int64).reshape(-1)
    t = np.asarray(target_actions, dtype=np.int64).reshape(-1)
    p = np.asarray(propensities, dtype=np.float64).reshape(-1)
    for name, values in (("logged_actions", a), ("target_actions", t), ("propensities", p)):
        if values.size != r.size:
            raise ValueError(f"{name} has {values.size} entries, rewards {r.size}")
    logged = ~np.isnan(p)
    outside = logged & ~((p > 0.0) & (p <= 1.0))
    if outside.any():
        i = int(np.argmax(outside))
        raise ValueError(f"propensities[{i}] = {p[i]}: a propensity must be in (0, 1]")
    r, a, t, p = r[logged], a[logged], t[logged], p[logged]
    match = a == t
    matched = int(match.sum())
    if matched == 0:
        return SnipsEstimate(float("nan"), float("nan"), 0.0, int(r.size), 0)
    w = np.where(match, 1.0 / p, 0.0)
    total = float(w.sum())
    value = float((w * np.where(match, r, 0.0)).sum() / total)
    residual = np.where(match, r - value, 0.0)
    se = float(np.sqrt(((w * residual) ** 2).sum()) / total) if matched >= 2 else float("nan")
    ess = total**2 / float((w**2).sum())
    return SnipsEstimate(value, se, ess, int(r.size), matched)


def disagrees(simulated: float, estimate: SnipsEstimate, threshold: float = IPS_ALARM_SE) -> bool:
    """Whether the simulated value lies more than ``threshold`` standard errors from SNIPS.

    False when the estimate has no standard error (under two matching trades).
    """
    if not (np.isfinite(estimate.se) and np.isfinite(simulated)):
        return False
    return abs(simulated - estimate.value) > threshold * estimate.se


class SecondOpinion(NamedTuple):
    """One candidate's simulated value on a window beside its SNIPS estimate."""

    agent: Agent
    simulated: float
    """The candidate's mean reward in the simulated replay's counterfactual rewards (the
    account and the other agent as logged), over the decisions with a propensity."""
    estimate: SnipsEstimate
    coverage: float
    """Share of the window's simulated decisions that have a logged propensity."""
    disagrees: bool
    """``|simulated - SNIPS| > threshold × SE``: the alarm."""
    threshold: float

    def figures(self) -> dict[str, Any]:
        """The figures to log (``ips.*``) and the flag ``ips_disagrees``; NaN left out."""
        out: dict[str, Any] = {
            "ips.metric": agent_spec(self.agent).reward_metric,
            "ips.simulated": self.simulated,
            "ips.snips": self.estimate.value,
            "ips.se": self.estimate.se,
            "ips.ess": self.estimate.ess,
            "ips.n": self.estimate.n,
            "ips.matched": self.estimate.matched,
            "ips.coverage": self.coverage,
            "ips.threshold_se": self.threshold,
            "ips_disagrees": self.disagrees,
        }
        return {k: v for k, v in out.items() if not (isinstance(v, float) and np.isnan(v))}


def second_opinion(
    agent: str,
    candidate_q: NDArray[np.float64],
    inputs: SimulationInputs,
    tr: Transitions,
    config: ReplayConfig,
    threshold: float = IPS_ALARM_SE,
) -> SecondOpinion | None:
    """The candidate's simulated mean reward and its SNIPS estimate on one window; None
    without any logged propensity of the agent there.

    ``inputs`` and ``tr`` are the window's simulation inputs and transitions. Both figures
    cover the simulated decisions that have the agent's propensity, in the state the
    agent logged there: the simulated value takes the candidate's greedy action's reward
    from the counterfactual rewards (``rlv2.replay.kernel_inputs``, mode explore), SNIPS the
    logged rewards of the trades where the behaviour took that action.
    """
    spec = agent_spec(agent)
    meta = spec.agent is Agent.META_STRATEGY
    rows = inputs.rows
    propensity = np.asarray(
        (tr.meta_action_prob if meta else tr.sizing_action_prob)[rows], dtype=np.float64
    )
    logged = ~np.isnan(propensity)
    if not logged.any():
        return None
    events = kernel_inputs(spec.agent, ReplayMode.EXPLORE, tr, config, inputs)
    target = greedy_policy(np.asarray(candidate_q, dtype=np.float64))[events.states]
    simulated = float(events.rewards[np.flatnonzero(logged), target[logged]].mean())
    logged_meta, logged_sizing = logged_rewards(tr, rows, config)
    estimate = snips(
        (logged_meta if meta else logged_sizing)[logged],
        (inputs.logged_meta if meta else inputs.logged_sizing)[logged],
        target[logged],
        propensity[logged],
    )
    return SecondOpinion(
        spec.agent,
        simulated,
        estimate,
        float(logged.mean()),
        disagrees(simulated, estimate, threshold),
        threshold,
    )
