"""The logged mode: off-policy Q-learning on the actions the system took (SPEC A5 replayed).

Every trade that closed with RL on, at its signal and at its close, is one transition
per agent: the state at the signal (meta) or the trade (sizing), the logged action,
the reward computed at close (SPEC A1), and the state at close. Transitions apply in
close order (ties by decision). ``train_logged_agents`` drives the agents event by
event exactly as a live consumer does; ``rlv2.replay.counterfactual.kernel_inputs``
feeds the same transitions to the compiled kernel, and a test proves the Q-tables
identical.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from rlv2.actions import meta_space, sizing_space
from rlv2.agents import EpisodeTracker, MetaStrategyAgent, PositionSizingAgent
from rlv2.domain import Agent
from rlv2.outcomes import WEIGHT_SCALES, position_exposure
from rlv2.records import Transitions
from rlv2.replay.config import ReplayConfig, close_order, episode_ends, traded_mask
from rlv2.rewards import (
    meta_strategy_reward,
    position_sizing_reward,
    regime_alignment,
    risk_penalty,
    volatility_adjustment,
)
from rlv2.states import meta_state_features, sizing_state_features


class LoggedTransitions(NamedTuple):
    """Both agents' logged transitions, in close order."""

    rows: NDArray[np.int64]
    """Row of each transition in the transitions arrays."""
    meta_states: NDArray[np.int64]
    meta_actions: NDArray[np.int64]
    meta_rewards: NDArray[np.float64]
    meta_next_states: NDArray[np.int64]
    sizing_states: NDArray[np.int64]
    sizing_actions: NDArray[np.int64]
    sizing_rewards: NDArray[np.float64]
    sizing_next_states: NDArray[np.int64]
    dones: NDArray[np.bool_]
    terminals: NDArray[np.bool_]


def meta_features(tr: Transitions, rows: NDArray[np.int64], at_close: bool) -> dict[str, Any]:
    """Raw meta-strategy state features (SPEC A2) of some rows, at the signal or at close."""
    if at_close:
        return meta_state_features(
            tr.close_regime[rows],
            tr.close_volatility[rows],
            tr.close_market_pressure[rows],
            tr.confidence[rows],
            tr.close_winrate[rows],
            tr.close_account_health[rows],
        )
    return meta_state_features(
        tr.regime[rows],
        tr.volatility[rows],
        tr.market_pressure[rows],
        tr.confidence[rows],
        tr.previous_winrate[rows],
        tr.account_health[rows],
    )


def open_exposure_before(tr: Transitions, rows: NDArray[np.int64]) -> NDArray[np.float64]:
    """Exposure of the other open positions when a logged trade entered.

    The logged ``portfolio_exposure`` includes the trade itself (SPEC C: at entry); the
    sizing state must not depend on the size it is about to choose, so it sees the
    exposure without the trade's own notional × leverage.
    """
    scale = WEIGHT_SCALES[tr.weight_action[rows]]
    own = position_exposure(tr.size_multiplier[rows], tr.leverage[rows], scale)
    return np.maximum(tr.portfolio_exposure[rows] - own, 0.0)


def sizing_features(tr: Transitions, rows: NDArray[np.int64], at_close: bool) -> dict[str, Any]:
    """Raw position-sizing state features (SPEC A2) of some rows, at the trade or at close.

    ``portfolio_exposure`` is that of the other open positions at entry (see
    ``open_exposure_before``), in both; signal confidence is the trade's; the market and
    account parts move to the close.
    """
    exposure = open_exposure_before(tr, rows)
    if at_close:
        return sizing_state_features(
            tr.trade_confidence[rows],
            exposure,
            tr.close_winrate[rows],
            tr.close_volatility[rows],
            tr.close_equity_curve_slope[rows],
        )
    return sizing_state_features(
        tr.trade_confidence[rows],
        exposure,
        tr.previous_winrate[rows],
        tr.volatility[rows],
        tr.equity_curve_slope[rows],
    )


def logged_rewards(
    tr: Transitions, rows: NDArray[np.int64], config: ReplayConfig
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """SPEC A1's two rewards of logged trades, from the history's own outcomes."""
    alignment = regime_alignment(
        tr.trade_predicted_regime[rows], tr.actual_regime[rows], tr.trade_confidence[rows]
    )
    meta = meta_strategy_reward(
        tr.pnl_pct[rows],
        tr.max_drawdown_pct[rows],
        tr.close_sharpe_signal[rows],
        alignment,
        config.meta_weights,
    )
    sizing = position_sizing_reward(
        tr.pnl_pct[rows],
        risk_penalty(tr.leverage[rows], tr.portfolio_exposure[rows]),
        volatility_adjustment(tr.volatility[rows]),
        config.sizing_weights,
    )
    return np.atleast_1d(meta), np.atleast_1d(sizing)


def logged_actions(tr: Transitions, rows: NDArray[np.int64]) -> tuple[NDArray[np.int64], ...]:
    """Codes of the logged meta and sizing actions of some rows."""
    meta = meta_space.encode(tr.strategy[rows], tr.trade_model[rows], tr.weight_action[rows])
    sizing = sizing_space.encode(tr.size_multiplier[rows], tr.leverage[rows])
    return np.atleast_1d(meta), np.atleast_1d(sizing)


def logged_transitions(tr: Transitions, config: ReplayConfig) -> LoggedTransitions:
    """Both agents' logged transitions of the traded decisions, in close order."""
    rows = close_order(tr, traded_mask(tr))
    meta_actions, sizing_actions = logged_actions(tr, rows)
    meta_rewards, sizing_rewards = logged_rewards(tr, rows, config)
    return LoggedTransitions(
        rows=rows,
        meta_states=np.atleast_1d(config.meta_space.encode(meta_features(tr, rows, False))),
        meta_actions=meta_actions,
        meta_rewards=meta_rewards,
        meta_next_states=np.atleast_1d(config.meta_space.encode(meta_features(tr, rows, True))),
        sizing_states=np.atleast_1d(config.sizing_space.encode(sizing_features(tr, rows, False))),
        sizing_actions=sizing_actions,
        sizing_rewards=sizing_rewards,
        sizing_next_states=np.atleast_1d(
            config.sizing_space.encode(sizing_features(tr, rows, True))
        ),
        dones=episode_ends(tr.closed_ts[rows], config.episode),
        terminals=np.zeros(len(rows), dtype=bool),
    )


def make_agents(
    config: ReplayConfig,
) -> tuple[MetaStrategyAgent, PositionSizingAgent, EpisodeTracker]:
    """Fresh agents and tracker configured as ``config`` says."""
    meta = MetaStrategyAgent(config.meta_space, **config.hyperparameters(Agent.META_STRATEGY))
    sizing = PositionSizingAgent(
        config.sizing_space, **config.hyperparameters(Agent.POSITION_SIZING)
    )
    tracker = EpisodeTracker({meta.name: meta, sizing.name: sizing}, gamma=config.gamma)
    return meta, sizing, tracker


def train_logged_agents(
    tr: Transitions,
    meta: MetaStrategyAgent,
    sizing: PositionSizingAgent,
    tracker: EpisodeTracker,
    config: ReplayConfig,
) -> LoggedTransitions:
    """Off-policy learning driven event by event through the live consumer's code path.

    Rebuilds ``signal.generated``, ``trade.executed`` and ``position.closed`` in time
    order (at equal times: closes, then signals, then trades) and calls the agents and
    the tracker as SPEC A5 describes.
    """
    lt = logged_transitions(tr, config)
    events: list[tuple[Any, int, int, int]] = []
    for i, r in enumerate(lt.rows):
        events.append((tr.ts[r], 1, int(tr.decision_id[r]), i))
        events.append((tr.trade_ts[r], 2, int(tr.decision_id[r]), i))
        events.append((tr.closed_ts[r], 0, int(tr.decision_id[r]), i))
    events.sort()
    for _, kind, decision, i in events:
        if kind == 1:
            meta.set_current_state(int(lt.meta_states[i]), key=decision)
            meta.select_action(key=decision)
            meta.set_executed_action(int(lt.meta_actions[i]), key=decision)
            tracker.start_episode(decision)
        elif kind == 2:
            sizing.set_current_state(int(lt.sizing_states[i]), key=decision)
            sizing.set_executed_action(int(lt.sizing_actions[i]), key=decision)
        else:
            meta.update(float(lt.meta_rewards[i]), int(lt.meta_next_states[i]), key=decision)
            sizing.update(float(lt.sizing_rewards[i]), int(lt.sizing_next_states[i]), key=decision)
            tracker.add_step(
                decision,
                **{meta.name: float(lt.meta_rewards[i]), sizing.name: float(lt.sizing_rewards[i])},
            )
            tracker.end_episode(decision)
            if lt.dones[i]:
                meta.end_episode()
                sizing.end_episode()
    return lt
