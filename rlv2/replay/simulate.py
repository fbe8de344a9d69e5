"""The simulated mode, readable: the agents choose their own actions, outcomes from prices.

On each decision point where the system traded with RL on, the agents replace its
choices; the outcome of whatever they choose comes from the price path
(``rlv2.outcomes``), and the path-dependent account features (win rate, account
health, equity slope, exposure, Sharpe signal) are recomputed from the simulated
trades. Decision points the system passed are not traded. ``rlv2.replay.evaluate`` is
the compiled twin of this loop without learning; a test proves them equal.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from rlv2.actions import meta_space, sizing_space
from rlv2.agents import EpisodeTracker, MetaStrategyAgent, PositionSizingAgent, TabularAgent
from rlv2.domain import Policy, parse_enum
from rlv2.outcomes import (
    BUST_EQUITY,
    INITIAL_EQUITY,
    MARGIN_FRACTION,
    WEIGHT_SCALES,
    equity_after_close,
    position_notional,
    position_outcome,
)
from rlv2.records import AccountStart
from rlv2.replay.config import ReplayConfig
from rlv2.replay.inputs import SimulationInputs
from rlv2.rewards import (
    meta_strategy_reward,
    position_sizing_reward,
    regime_alignment,
    risk_penalty,
    sharpe_signal,
    volatility_adjustment,
)
from rlv2.states import (
    equity_curve_slope,
    meta_state_features,
    sizing_state_features,
    trailing_winrate,
)


class SimulationResult(NamedTuple):
    """One record per simulated trade, in close order."""

    decision: NDArray[np.int64]
    """Index of the decision in the ``SimulationInputs``."""
    meta_state: NDArray[np.int64]
    meta_action: NDArray[np.int64]
    sizing_state: NDArray[np.int64]
    sizing_action: NDArray[np.int64]
    pnl_pct: NDArray[np.float64]
    max_drawdown_pct: NDArray[np.float64]
    liquidated: NDArray[np.bool_]
    meta_reward: NDArray[np.float64]
    sizing_reward: NDArray[np.float64]
    equity: NDArray[np.float64]
    """Equity after the trade's close."""


@dataclass
class _Account:
    """The simulated account: closed trades, equity, open exposure."""

    window: int
    pnls: list[float] = field(default_factory=list[float])
    equity: float = INITIAL_EQUITY
    curve: list[float] = field(default_factory=list[float])
    peak: float = INITIAL_EQUITY
    open_notional: dict[int, float] = field(default_factory=dict[int, float])
    open_sum: float = 0.0
    """Σ open notional, kept as a running sum in event order (as the compiled twin does)."""

    @classmethod
    def starting(cls, start: AccountStart, window: int) -> _Account:
        """The account as the window's logged account left it."""
        return cls(
            window,
            pnls=[float(p) for p in start.recent_pnl],
            equity=float(start.equity),
            curve=[float(e) for e in start.recent_equity],
            peak=float(start.peak),
        )

    def exposure(self) -> float:
        return self.open_sum / self.equity

    def open(self, key: int, notional: float) -> None:
        self.open_notional[key] = notional
        self.open_sum += notional

    def winrate(self) -> float:
        return float(trailing_winrate(self.pnls, self.window))

    def health(self) -> float:
        return self.equity / self.peak

    def slope(self) -> float:
        return float(equity_curve_slope(self.curve[-self.window :]))

    def close(self, key: int, pnl: float) -> float:
        self.open_sum -= self.open_notional.pop(key, 0.0)
        self.pnls.append(pnl)
        self.equity = equity_after_close(self.equity, pnl, MARGIN_FRACTION)
        self.curve.append(self.equity)
        self.peak = max(self.peak, self.equity)
        tail = np.asarray(self.pnls[-self.window :]) / 100.0
        return float(sharpe_signal(tail))


@dataclass
class _Open:
    decision: int
    path: int
    model: int
    meta_state: int
    meta_action: int
    sizing_state: int
    sizing_action: int
    leverage: int
    exposure_total: float
    pnl: float
    drawdown: float
    liquidated: bool


def _choose(
    agent: TabularAgent, state: int, key: int, policy: Policy, logged: int, learn: bool
) -> int:
    if policy is Policy.LOGGED:
        action = logged
    elif policy is Policy.GREEDY:
        action = agent.greedy_action(state)
    else:
        agent.set_current_state(state, key=key)
        action = agent.select_action(key=key)
    if learn:
        if policy is not Policy.EGREEDY:
            agent.set_current_state(state, key=key)
        agent.set_executed_action(action, key=key)
    return action


def simulate(
    inputs: SimulationInputs,
    meta: MetaStrategyAgent,
    sizing: PositionSizingAgent,
    config: ReplayConfig,
    *,
    policy: str = Policy.EGREEDY,
    sizing_policy: str | None = None,
    learn: bool = True,
    tracker: EpisodeTracker | None = None,
    winrate_window: int = 20,
) -> SimulationResult:
    """Run the agents over the decisions in time order, outcomes from the price path.

    ``policy`` (and ``sizing_policy`` for the sizing agent, default the same): a
    ``Policy``: ``egreedy`` (training), ``greedy`` (evaluation of a Q-table) or
    ``logged`` (the behaviour policy's own actions through the same outcome model).
    With ``learn`` the agents make their TD updates at each close (SPEC A5 step 3); ε
    decays at each close (one position, one episode). Once equity falls to zero the
    account is bust and no later decision is traded.
    """
    meta_policy = parse_enum(Policy, policy, "policy")
    size_policy = parse_enum(Policy, sizing_policy or policy, "sizing_policy")
    account = _Account.starting(inputs.start, winrate_window)
    pending: list[tuple[Any, int, int]] = []
    opened: dict[int, _Open] = {}
    records: list[tuple[Any, ...]] = []
    w_meta, w_sizing = config.meta_weights, config.sizing_weights
    n = len(inputs.rows)
    start = inputs.start
    for j in range(len(start.open_notional)):
        # positions open at the start: at risk until their logged close (never, if none)
        account.open(n + j, float(start.open_notional[j]))
        if not np.isnat(start.open_close_ts[j]):
            heapq.heappush(pending, (start.open_close_ts[j], n + j, n + j))

    def close_next() -> None:
        _, _, key = heapq.heappop(pending)
        if key >= n:
            account.close(key, float(start.open_pnl[key - n]))
            return
        o = opened.pop(key)
        sharpe = account.close(key, o.pnl)
        d, p = o.decision, o.path
        alignment = regime_alignment(
            inputs.predicted[d, o.model], inputs.hold_regime[d, p], inputs.confidences[d, o.model]
        )
        r_meta = float(meta_strategy_reward(o.pnl, o.drawdown, sharpe, alignment, w_meta))
        r_sizing = float(
            position_sizing_reward(
                o.pnl,
                risk_penalty(o.leverage, o.exposure_total),
                volatility_adjustment(inputs.volatility[d]),
                w_sizing,
            )
        )
        if learn:
            meta_next = config.meta_space.encode(
                meta_state_features(
                    inputs.close_regime[d, p],
                    inputs.close_volatility[d, p],
                    inputs.close_market_pressure[d, p],
                    inputs.confidence[d],
                    account.winrate(),
                    account.health(),
                )
            )
            sizing_next = config.sizing_space.encode(
                sizing_state_features(
                    inputs.confidences[d, o.model],
                    account.exposure(),
                    account.winrate(),
                    inputs.close_volatility[d, p],
                    account.slope(),
                )
            )
            meta.update(r_meta, int(meta_next), key=key)
            sizing.update(r_sizing, int(sizing_next), key=key)
            if tracker is not None:
                tracker.add_step(key, **{meta.name: r_meta, sizing.name: r_sizing})
                tracker.end_episode(key)
            meta.end_episode()
            sizing.end_episode()
        records.append(
            (
                d,
                o.meta_state,
                o.meta_action,
                o.sizing_state,
                o.sizing_action,
                o.pnl,
                o.drawdown,
                o.liquidated,
                r_meta,
                r_sizing,
                account.equity,
            )
        )

    for d in range(len(inputs.rows)):
        while pending and pending[0][0] <= inputs.ts[d]:
            close_next()
        if account.equity <= BUST_EQUITY:
            continue  # the account is bust: no later decision is traded
        meta_state = int(
            config.meta_space.encode(
                meta_state_features(
                    inputs.regime[d],
                    inputs.volatility[d],
                    inputs.market_pressure[d],
                    inputs.confidence[d],
                    account.winrate(),
                    account.health(),
                )
            )
        )
        meta_action = _choose(meta, meta_state, d, meta_policy, int(inputs.logged_meta[d]), learn)
        strategy, model, weight = (int(x) for x in meta_space.decode(meta_action))
        if tracker is not None and learn:
            tracker.start_episode(d)
        sizing_state = int(
            config.sizing_space.encode(
                sizing_state_features(
                    inputs.confidences[d, model],
                    account.exposure(),
                    account.winrate(),
                    inputs.volatility[d],
                    account.slope(),
                )
            )
        )
        sizing_action = _choose(
            sizing, sizing_state, d, size_policy, int(inputs.logged_sizing[d]), learn
        )
        size, leverage = sizing_space.decode(sizing_action)
        w_scale = float(WEIGHT_SCALES[weight])
        path = strategy * 2 + (1 if inputs.directions[d, model] > 0 else 0)
        pnl, drawdown, liquidated = position_outcome(
            inputs.ret[d, path], inputs.mae[d, path], size, leverage, w_scale
        )
        notional = position_notional(size, w_scale, leverage, MARGIN_FRACTION * account.equity)
        exposure_total = (account.open_sum + notional) / account.equity
        account.open(d, notional)
        opened[d] = _Open(
            d,
            path,
            model,
            meta_state,
            meta_action,
            sizing_state,
            sizing_action,
            leverage,
            exposure_total,
            float(pnl),
            float(drawdown),
            bool(liquidated),
        )
        heapq.heappush(pending, (inputs.exit_ts[d, path], d, d))
    while pending:
        close_next()
    cols = list(zip(*records, strict=True)) if records else [()] * 11
    dtypes = [np.int64] * 5 + [np.float64, np.float64, bool, np.float64, np.float64, np.float64]
    return SimulationResult(*(np.asarray(c, dtype=t) for c, t in zip(cols, dtypes, strict=True)))
