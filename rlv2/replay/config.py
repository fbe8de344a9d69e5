"""How a replay learns (SPEC A4, A1, C) and which decisions it replays, in which order."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rlv2.domain import Agent, EpisodeGrouping, agent_spec, parse_episode
from rlv2.records import Transitions
from rlv2.rewards import MetaRewardWeights, SizingRewardWeights
from rlv2.rng import check_seed
from rlv2.states import META_STATE_SPACE, SIZING_STATE_SPACE, StateSpace


@dataclass(frozen=True)
class ReplayConfig:
    """How a replay learns: SPEC A4's hyperparameters, A1's weights, C's episode window."""

    alpha: float = 0.01
    """Learning rate α."""
    gamma: float = 0.99
    """Discount γ."""
    epsilon: float = 0.1
    """Initial exploration rate ε."""
    epsilon_decay: float = 0.995
    """Factor applied to ε at each episode end."""
    epsilon_min: float = 0.01
    """Floor of ε."""
    seed: int = 0
    """Seed of the agents' random streams (each agent adds its table's seed offset)."""
    meta_weights: MetaRewardWeights = field(default_factory=MetaRewardWeights)
    """Weights of the meta-strategy reward."""
    sizing_weights: SizingRewardWeights = field(default_factory=SizingRewardWeights)
    """Weights of the position-sizing reward."""
    meta_space: StateSpace = META_STATE_SPACE
    """Discretisation of the meta-strategy state."""
    sizing_space: StateSpace = SIZING_STATE_SPACE
    """Discretisation of the position-sizing state."""
    episode: str = "position"
    """Episode window: ``position`` (SPEC A5), ``day``, or ``trades:N``."""

    def __post_init__(self) -> None:
        parse_episode(self.episode)
        check_seed(self.seed)
        ranges = {
            "alpha": (self.alpha, 0.0, False),
            "gamma": (self.gamma, 0.0, True),
            "epsilon": (self.epsilon, 0.0, True),
            "epsilon_decay": (self.epsilon_decay, 0.0, False),
            "epsilon_min": (self.epsilon_min, 0.0, True),
        }
        for name, (value, low, closed) in ranges.items():
            above = value >= low if closed else value > low
            if not (above and value <= 1.0):  # also refuses NaN
                bracket = "[" if closed else "("
                raise ValueError(f"{name}={value} must be in {bracket}{low:g}, 1]")

    def state_space(self, agent: Agent) -> StateSpace:
        """The state space this configuration gives an agent."""
        spaces = {Agent.META_STRATEGY: self.meta_space, Agent.POSITION_SIZING: self.sizing_space}
        return spaces[agent_spec(agent).agent]

    def hyperparameters(self, agent: Agent) -> dict[str, Any]:
        """Keyword arguments of ``QLearner`` / the kernels for one agent."""
        return {
            "alpha": self.alpha,
            "gamma": self.gamma,
            "epsilon": self.epsilon,
            "epsilon_decay": self.epsilon_decay,
            "epsilon_min": self.epsilon_min,
            "seed": self.seed + agent_spec(agent).seed_offset,
        }


def episode_ends(closed_ts: NDArray[Any], episode: str) -> NDArray[np.bool_]:
    """``dones`` over transitions in close order for an episode window (SPEC C)."""
    grouping, size = parse_episode(episode)
    n = len(closed_ts)
    if grouping is EpisodeGrouping.POSITION:
        return np.ones(n, dtype=bool)
    if grouping is EpisodeGrouping.DAY:
        days = np.asarray(closed_ts, dtype="datetime64[D]")
        return np.r_[days[1:] != days[:-1], True] if n else np.zeros(0, bool)
    return (np.arange(n) + 1) % size == 0


def traded_mask(tr: Transitions, closed_before: Any = None) -> NDArray[np.bool_]:
    """Decisions the system traded with RL on at the signal and at the close.

    With ``closed_before`` (a time), only trades closed before it: a training window
    must not learn from closes that fall into the holdout after it.
    """
    mask = (
        ~np.isnat(tr.trade_ts)  # a trade (its id may be any integer, -1 included)
        & (tr.exit_idx >= 0)
        & tr.rl_at_signal.astype(bool)
        & tr.rl_at_close.astype(bool)
    )
    if closed_before is not None:
        mask &= tr.closed_ts < np.datetime64(closed_before)
    return mask


def every_model_signalled(tr: Transitions) -> NDArray[np.bool_]:
    """Decisions with a signal from every model (a model's confidence is NaN without one).

    The simulated replay needs them: an action that picks a model takes that model's
    direction and confidence (SPEC C), which a model without a signal does not have.
    """
    return np.asarray(~np.isnan(tr.model_confidence).any(axis=1), dtype=np.bool_)


def close_order(tr: Transitions, mask: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Rows selected by ``mask`` in close order (close time, then decision)."""
    rows = np.flatnonzero(mask)
    order = np.lexsort((tr.decision_id[rows], tr.closed_ts[rows]))
    return rows[order].astype(np.int64)


def decision_order(tr: Transitions, mask: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Rows selected by ``mask`` in decision-time order."""
    rows = np.flatnonzero(mask)
    return rows[np.argsort(tr.decision_id[rows], kind="stable")].astype(np.int64)
