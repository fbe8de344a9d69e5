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

import numpy as np
from numpy.typing import NDArray

from rlv2.actions import meta_space, sizing_space
from rlv2.domain import Agent, ReplayMode, agent_spec, parse_enum
from rlv2.outcomes import WEIGHT_SCALES, position_exposure, position_pnl
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
    meta_strategy_reward,
    position_sizing_reward,
    regime_alignment,
    risk_penalty,
    volatility_adjustment,
)


def counterfactual_rewards(
    inputs: SimulationInputs, tr: Transitions, config: ReplayConfig
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Reward matrices (D, 48) and (D, 56): every action's reward on every decision.

    The meta agent's actions keep the logged size and leverage; the sizing agent's keep
    the logged strategy, model and weight (each agent learns against the other's
    behaviour). Account features (the Sharpe signal, the other positions' exposure,
    equity) hold their logged values: the kernel cannot recompute them per action.
    """
    rows = inputs.rows
    d = len(rows)
    strategy, model, weight = meta_space.decode_arrays(np.arange(meta_space.n))
    logged_size = tr.size_multiplier[rows].astype(np.float64)
    logged_lev = tr.leverage[rows].astype(np.float64)
    dirs = inputs.directions[:, model]  # (D, 48)
    paths = strategy[None, :] * 2 + (dirs > 0)
    take = np.arange(d)[:, None]
    pnl, dd, _ = position_pnl(
        inputs.ret[take, paths],
        inputs.mae[take, paths],
        logged_size[:, None],
        logged_lev[:, None],
        WEIGHT_SCALES[weight][None, :],
    )
    alignment = regime_alignment(
        inputs.predicted[:, model], inputs.hold_regime[take, paths], inputs.confidences[:, model]
    )
    sharpe = tr.close_sharpe_signal[rows].astype(np.float64)
    r_meta = meta_strategy_reward(pnl, dd, sharpe[:, None], alignment, config.meta_weights)

    l_strategy, l_model, l_weight = meta_space.decode_arrays(inputs.logged_meta)
    l_path = l_strategy * 2 + (inputs.directions[np.arange(d), l_model] > 0)
    sizes, levs = sizing_space.decode_arrays(np.arange(sizing_space.n))
    l_scale = WEIGHT_SCALES[l_weight]
    pnl_s, _, _ = position_pnl(
        inputs.ret[np.arange(d), l_path][:, None],
        inputs.mae[np.arange(d), l_path][:, None],
        sizes[None, :],
        levs[None, :],
        l_scale[:, None],
    )
    equity = tr.equity[rows].astype(np.float64)
    others = open_exposure_before(tr, rows)
    exposure = others[:, None] + position_exposure(
        sizes[None, :], levs[None, :], l_scale[:, None], equity[:, None]
    )
    r_sizing = position_sizing_reward(
        pnl_s,
        risk_penalty(np.broadcast_to(levs[None, :], exposure.shape), exposure),
        np.asarray(volatility_adjustment(inputs.volatility))[:, None],
        config.sizing_weights,
    )
    return np.asarray(r_meta, np.float64), np.asarray(r_sizing, np.float64)


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
    r_meta, r_sizing = counterfactual_rewards(inputs, tr, config)
    dones = episode_ends(tr.closed_ts[rows], config.episode)
    terminals = np.zeros(len(rows), dtype=bool)
    features = meta_features if meta else sizing_features
    space = config.state_space(agent)
    states = space.encode(features(tr, rows, False))
    next_states = space.encode(features(tr, rows, True))
    rewards = r_meta if meta else r_sizing
    return KernelInputs(
        np.atleast_1d(states), rewards, np.atleast_1d(next_states), dones, terminals, None
    )


def train_kernel(
    q: NDArray[np.float64], events: KernelInputs, config: ReplayConfig, agent: str
) -> ReplayStats:
    """Q-learning of one agent over its kernel events, compiled; ``q`` updated in place."""
    return replay(q, **events.kwargs(), **config.hyperparameters(agent_spec(agent).agent))
