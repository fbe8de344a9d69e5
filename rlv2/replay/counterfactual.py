"""The kernels' inputs: one agent's events, logged or with every action's reward.

The compiled fast path of the simulated mode (``kernel_inputs(agent, "explore", ...)``)
feeds the exploring kernel one reward matrix per agent (``counterfactual_rewards``).
It can do so only by holding the account features at their logged values and the
next state at the logged close (a kernel takes one next state per event), and it
applies each transition at its decision time; ``rlv2.replay.simulate`` has none of
these limits and is the one evaluation uses.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numba
import numpy as np
from numpy.typing import NDArray

from rlv2.actions import meta_action_parts, meta_space, sizing_action_parts, sizing_space
from rlv2.domain import LEVERAGES, SIZE_MULTIPLIERS, Agent, ReplayMode, agent_spec, parse_enum
from rlv2.outcomes import MARGIN_FRACTION, WEIGHT_SCALES, position_notional, position_outcome
from rlv2.qlearning import ReplayStats, replay
from rlv2.records import Transitions
from rlv2.replay.config import ReplayConfig, episode_ends
from rlv2.replay.inputs import SimulationInputs
from rlv2.replay.logged import (
    logged_transitions,
    meta_features,
    open_exposure_before,
    sizing_features,
)
from rlv2.rewards import (
    alignment_value,
    meta_reward_value,
    risk_penalty_value,
    sizing_reward_value,
    volatility_adjustment_value,
)


@numba.njit(cache=True, nogil=True, parallel=True)
def _meta_rewards_kernel(
    ret: NDArray[np.float64],
    mae: NDArray[np.float64],
    directions: NDArray[np.int64],
    confidences: NDArray[np.float64],
    predicted: NDArray[np.int64],
    hold_regime: NDArray[np.int64],
    size: NDArray[np.float64],
    leverage: NDArray[np.float64],
    sharpe: NDArray[np.float64],
    weight_scales: NDArray[np.float64],
    weights: NDArray[np.float64],
    out: NDArray[np.float64],
) -> None:
    for d in numba.prange(out.shape[0]):
        for a in range(out.shape[1]):
            strategy, model, weight = meta_action_parts(a)
            path = strategy * 2 + (1 if directions[d, model] > 0 else 0)
            pnl, drawdown, _ = position_outcome(
                ret[d, path], mae[d, path], size[d], leverage[d], weight_scales[weight]
            )
            alignment = alignment_value(
                predicted[d, model], hold_regime[d, path], confidences[d, model]
            )
            out[d, a] = meta_reward_value(
                pnl, drawdown, sharpe[d], alignment, weights[0], weights[1], weights[2]
            )


@numba.njit(cache=True, nogil=True, parallel=True)
def _sizing_rewards_kernel(
    ret: NDArray[np.float64],
    mae: NDArray[np.float64],
    directions: NDArray[np.int64],
    volatility: NDArray[np.float64],
    logged_meta: NDArray[np.int64],
    others: NDArray[np.float64],
    equity: NDArray[np.float64],
    sizes: NDArray[np.float64],
    leverages: NDArray[np.float64],
    weight_scales: NDArray[np.float64],
    margin_fraction: float,
    weights: NDArray[np.float64],
    out: NDArray[np.float64],
) -> None:
    for d in numba.prange(out.shape[0]):
        strategy, model, weight = meta_action_parts(logged_meta[d])
        path = strategy * 2 + (1 if directions[d, model] > 0 else 0)
        scale = weight_scales[weight]
        adjustment = volatility_adjustment_value(volatility[d])
        for a in range(out.shape[1]):
            size_idx, lev_idx = sizing_action_parts(a)
            size, lev = sizes[size_idx], leverages[lev_idx]
            pnl, _, _ = position_outcome(ret[d, path], mae[d, path], size, lev, scale)
            margin = margin_fraction * equity[d]
            exposure = others[d] + position_notional(size, scale, lev, margin) / equity[d]
            out[d, a] = sizing_reward_value(
                pnl, risk_penalty_value(lev, exposure), adjustment, weights[0], weights[1]
            )


def _checked(name: str, rewards: NDArray[np.float64]) -> NDArray[np.float64]:
    """The matrix, or a ValueError naming the first decision whose reward is not finite."""
    bad = ~np.isfinite(rewards)
    if bad.any():
        d, a = np.argwhere(bad)[0]
        raise ValueError(f"{name}: the reward of action {a} on decision {d} is not finite")
    return rewards


def meta_counterfactual_rewards(
    inputs: SimulationInputs, tr: Transitions, config: ReplayConfig
) -> NDArray[np.float64]:
    """(D, 48): every meta action's reward on every decision, the logged size and leverage kept.

    The Sharpe signal holds its logged value: the kernel cannot recompute it per action.
    """
    rows = inputs.rows
    out = np.empty((len(rows), meta_space.n))
    w = config.meta_weights
    _meta_rewards_kernel(
        inputs.ret,
        inputs.mae,
        inputs.directions,
        inputs.confidences,
        inputs.predicted,
        inputs.hold_regime,
        tr.size_multiplier[rows].astype(np.float64),
        tr.leverage[rows].astype(np.float64),
        tr.close_sharpe_signal[rows].astype(np.float64),
        WEIGHT_SCALES,
        np.asarray([w.drawdown, w.sharpe, w.regime], np.float64),
        out,
    )
    return _checked("meta counterfactual rewards", out)


def sizing_counterfactual_rewards(
    inputs: SimulationInputs, tr: Transitions, config: ReplayConfig
) -> NDArray[np.float64]:
    """(D, 56): every sizing action's reward on every decision, the logged meta action kept.

    The other positions' exposure and equity hold their logged values.
    """
    rows = inputs.rows
    out = np.empty((len(rows), sizing_space.n))
    w = config.sizing_weights
    _sizing_rewards_kernel(
        inputs.ret,
        inputs.mae,
        inputs.directions,
        inputs.volatility,
        inputs.logged_meta,
        open_exposure_before(tr, rows),
        tr.equity[rows].astype(np.float64),
        np.asarray(SIZE_MULTIPLIERS, np.float64),
        np.asarray(LEVERAGES, np.float64),
        WEIGHT_SCALES,
        MARGIN_FRACTION,
        np.asarray([w.risk, w.volatility], np.float64),
        out,
    )
    return _checked("sizing counterfactual rewards", out)


def counterfactual_rewards(
    inputs: SimulationInputs, tr: Transitions, config: ReplayConfig
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Both agents' reward matrices, (D, 48) and (D, 56) (each agent learns against the
    other's behaviour: its actions keep the other agent's logged choice)."""
    return (
        meta_counterfactual_rewards(inputs, tr, config),
        sizing_counterfactual_rewards(inputs, tr, config),
    )


class KernelInputs(NamedTuple):
    """One agent's events as the kernels take them (``rlv2.qlearning.replay``)."""

    states: NDArray[np.int64]
    rewards: NDArray[np.float64]
    """(N,) in off-policy mode, (N, A) counterfactual rewards in exploring mode."""
    next_states: NDArray[np.int64]
    dones: NDArray[np.bool_]
    terminals: NDArray[np.bool_]
    actions: NDArray[np.int64] | None
    """The logged actions (off-policy mode) or None (exploring mode)."""

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``replay`` / ``replay_sweep`` after ``q``."""
        return {
            "states": self.states,
            "rewards": self.rewards,
            "next_states": self.next_states,
            "dones": self.dones,
            "terminals": self.terminals,
            "actions": self.actions,
        }


def kernel_inputs(
    agent: str,
    mode: str,
    tr: Transitions,
    config: ReplayConfig,
    inputs: SimulationInputs | None = None,
) -> KernelInputs:
    """Build one agent's kernel events: ``logged`` transitions or ``explore`` rewards.

    ``explore`` needs the simulation inputs and is the compiled fast path of the
    simulated mode (see ``counterfactual_rewards`` for what it holds fixed).
    """
    agent = agent_spec(agent).agent
    meta = agent is Agent.META_STRATEGY
    if parse_enum(ReplayMode, mode, "mode") is ReplayMode.LOGGED:
        lt = logged_transitions(tr, config)
        if meta:
            return KernelInputs(
                lt.meta_states,
                lt.meta_rewards,
                lt.meta_next_states,
                lt.dones,
                lt.terminals,
                lt.meta_actions,
            )
        return KernelInputs(
            lt.sizing_states,
            lt.sizing_rewards,
            lt.sizing_next_states,
            lt.dones,
            lt.terminals,
            lt.sizing_actions,
        )
    if inputs is None:
        raise ValueError("mode='explore' needs the simulation inputs")
    rows = inputs.rows
    dones = episode_ends(tr.closed_ts[rows], config.episode)
    terminals = np.zeros(len(rows), dtype=bool)
    features = meta_features if meta else sizing_features
    space = config.state_space(agent)
    states = space.encode(features(tr, rows, False))
    next_states = space.encode(features(tr, rows, True))
    rewards = (meta_counterfactual_rewards if meta else sizing_counterfactual_rewards)(
        inputs, tr, config
    )
    return KernelInputs(
        np.atleast_1d(states), rewards, np.atleast_1d(next_states), dones, terminals, None
    )


def train_kernel(
    q: NDArray[np.float64], events: KernelInputs, config: ReplayConfig, agent: str
) -> ReplayStats:
    """Q-learning of one agent over its kernel events, compiled; ``q`` updated in place."""
    return replay(q, **events.kwargs(), **config.hyperparameters(agent_spec(agent).agent))
