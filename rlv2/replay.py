"""SPEC A5 as a replay: the live event flow rebuilt from history, driving the agents.

Arrays in, arrays out: the inputs are the columns of ``rlv2.history.load_transitions``
(DuckDB and the compiled feature kernels), the outputs Q-tables and per-trade records.
Two modes:

**Logged** (off-policy Q-learning on the actions the system took). Every trade that
closed with RL on, at its signal and at its close, is one transition per agent:
the state at the signal (meta) or the trade (sizing), the logged action, the reward
computed at close (SPEC A1), and the state at close. Transitions apply in close order
(ties by decision). ``train_logged_agents`` drives the agents event by event exactly as
a live consumer does; ``kernel_inputs(agent, "logged", ...)`` feeds the same transitions
to the compiled kernel; a test proves the Q-tables identical.

**Simulated** (the agents choose their own actions). On each decision point where the
system traded with RL on, the agents replace its choices; the outcome of whatever
they choose comes from the price path (``rlv2.outcomes``), and the path-dependent
account features (win rate, account health, equity slope, exposure, Sharpe signal)
are recomputed from the simulated trades (``simulate``). Decision points the system
passed are not traded. The compiled fast path (``kernel_inputs(agent, "explore", ...)``,
built on ``counterfactual_rewards``) feeds the exploring kernel one reward matrix per agent;
it can do so only by holding the account features at their logged values and the
next state at the logged close (a kernel takes one next state per event), and it
applies each transition at its decision time. ``simulate`` has none of these limits
and is the one evaluation uses.

Episodes (SPEC C): by default one position lifecycle is one episode and nothing is
terminal; ``episode="day"`` or ``"trades:N"`` group closes instead. ε decays at each
episode end. The end of the data window truncates: its last transitions still
bootstrap.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numba
import numpy as np
from numpy.typing import NDArray

from rlv2 import account as account_kernels
from rlv2.actions import meta_space, sizing_space
from rlv2.agents import EpisodeTracker, MetaStrategyAgent, PositionSizingAgent
from rlv2.domain import (
    LEVERAGES,
    SIZE_MULTIPLIERS,
    WEIGHT_EXPOSURE_SCALE,
    Model,
    Regime,
    Strategy,
    WeightAction,
)
from rlv2.outcomes import (
    INITIAL_EQUITY,
    MARGIN_UNIT,
    PathOutcome,
    position_exposure,
    position_pnl,
    walk_paths,
)
from rlv2.qlearning import ReplayStats, replay
from rlv2.rewards import (
    MetaRewardWeights,
    SizingRewardWeights,
    meta_strategy_reward,
    position_sizing_reward,
    regime_alignment,
    risk_penalty,
    sharpe_signal,
    volatility_adjustment,
)
from rlv2.states import (
    META_STATE_SPACE,
    SIZING_STATE_SPACE,
    StateSpace,
    equity_curve_slope,
    trailing_winrate,
)

Arrays = dict[str, NDArray[Any]]
MODEL_COLUMNS = tuple(m.name.lower() for m in Model)
WEIGHT_SCALES = np.asarray([WEIGHT_EXPOSURE_SCALE[w] for w in WeightAction])
N_PATHS = len(Strategy) * 2
"""Counterfactual price paths per decision: each strategy's exit rule × both directions."""


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
    """Seed of the agents' random streams (meta uses ``seed``, sizing ``seed + 1``)."""
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

    def hyperparameters(self, agent: str) -> dict[str, Any]:
        """Keyword arguments of ``QLearner`` / the kernels for one agent."""
        return {
            "alpha": self.alpha,
            "gamma": self.gamma,
            "epsilon": self.epsilon,
            "epsilon_decay": self.epsilon_decay,
            "epsilon_min": self.epsilon_min,
            "seed": self.seed + (0 if agent == "meta_strategy" else 1),
        }


def _name_codes(values: NDArray[Any], enum: Any) -> NDArray[np.int64]:
    """Enum codes of names from SQL; NULL (None) or an unknown name becomes -1."""
    lookup = {e.name: int(e.value) for e in enum}

    def code(name: object) -> int:
        return lookup.get(name, -1) if isinstance(name, str) else -1

    found = np.frompyfunc(code, 1, 1)(np.asarray(values, dtype=object))
    return np.asarray(found, dtype=np.int64).reshape(np.shape(values))


def _regime_codes(values: NDArray[Any]) -> NDArray[np.int64]:
    return _name_codes(values, Regime)


def traded_mask(tr: Arrays, closed_before: Any = None) -> NDArray[np.bool_]:
    """Decisions the system traded with RL on at the signal and at the close.

    With ``closed_before`` (a time), only trades closed before it: a training window
    must not learn from closes that fall into the holdout after it.
    """
    mask = (
        ~np.isnat(tr["trade_ts"])  # a trade (its id may be any integer, -1 included)
        & (tr["exit_idx"] >= 0)
        & tr["rl_at_signal"].astype(bool)
        & tr["rl_at_close"].astype(bool)
    )
    if closed_before is not None:
        mask &= tr["closed_ts"] < np.datetime64(closed_before)
    return mask


def every_model_signalled(tr: Arrays) -> NDArray[np.bool_]:
    """Decisions with a signal from every model (a model's confidence is NaN without one).

    The simulated replay needs them: an action that picks a model takes that model's
    direction and confidence (SPEC C), which a model without a signal does not have.
    """
    return np.all([~np.isnan(tr[f"conf_{m}"]) for m in MODEL_COLUMNS], axis=0)


def episode_ends(closed_ts: NDArray[Any], episode: str) -> NDArray[np.bool_]:
    """``dones`` over transitions in close order for an episode window (SPEC C)."""
    n = len(closed_ts)
    if episode == "position":
        return np.ones(n, dtype=bool)
    if episode == "day":
        days = np.asarray(closed_ts, dtype="datetime64[D]")
        return np.r_[days[1:] != days[:-1], True] if n else np.zeros(0, bool)
    if episode.startswith("trades:"):
        size = int(episode.split(":", 1)[1])
        if size < 1:
            raise ValueError(f"episode={episode!r}: N must be >= 1")
        dones = (np.arange(n) + 1) % size == 0
        return dones
    raise ValueError(f"episode={episode!r}: expected 'position', 'day' or 'trades:N'")


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


def meta_features(tr: Arrays, rows: NDArray[np.int64], at_close: bool) -> dict[str, Any]:
    """Raw meta-strategy state features (SPEC A2) of some rows, at the signal or at close."""
    prefix = "close_" if at_close else ""
    return {
        "regime": _regime_codes(tr[f"{prefix}regime"][rows]),
        "volatility": tr[f"{prefix}volatility"][rows],
        "market_pressure": tr[f"{prefix}market_pressure"][rows],
        "confidence": tr["confidence"][rows],
        "previous_winrate": tr["close_winrate" if at_close else "previous_winrate"][rows],
        "account_health": tr["close_account_health" if at_close else "account_health"][rows],
    }


def open_exposure_before(tr: Arrays, rows: NDArray[np.int64]) -> NDArray[np.float64]:
    """Exposure of the other open positions when a logged trade entered.

    The logged ``portfolio_exposure`` includes the trade itself (SPEC C: at entry); the
    sizing state must not depend on the size it is about to choose, so it sees the
    exposure without the trade's own notional × leverage.
    """
    scale = WEIGHT_SCALES[_name_codes(tr["weight_action"][rows], WeightAction)]
    own = position_exposure(
        tr["size_multiplier"][rows], tr["leverage"][rows], scale, tr["equity"][rows]
    )
    return np.maximum(tr["portfolio_exposure"][rows] - own, 0.0)


def sizing_features(tr: Arrays, rows: NDArray[np.int64], at_close: bool) -> dict[str, Any]:
    """Raw position-sizing state features (SPEC A2) of some rows, at the trade or at close.

    ``portfolio_exposure`` is that of the other open positions at entry (see
    ``open_exposure_before``), in both; signal confidence is the trade's; the market and
    account parts move to the close.
    """
    return {
        "signal_confidence": tr["trade_confidence"][rows],
        "portfolio_exposure": open_exposure_before(tr, rows),
        "recent_winrate": tr["close_winrate" if at_close else "previous_winrate"][rows],
        "volatility": tr["close_volatility" if at_close else "volatility"][rows],
        "equity_curve_slope": tr["close_equity_curve_slope" if at_close else "equity_curve_slope"][
            rows
        ],
    }


def logged_rewards(
    tr: Arrays, rows: NDArray[np.int64], config: ReplayConfig
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """SPEC A1's two rewards of logged trades, from the history's own outcomes."""
    alignment = regime_alignment(
        _regime_codes(tr["trade_predicted_regime"][rows]),
        _regime_codes(tr["actual_regime"][rows]),
        tr["trade_confidence"][rows],
    )
    meta = meta_strategy_reward(
        tr["pnl_pct"][rows],
        tr["max_drawdown_pct"][rows],
        tr["close_sharpe_signal"][rows],
        alignment,
        config.meta_weights,
    )
    sizing = position_sizing_reward(
        tr["pnl_pct"][rows],
        risk_penalty(tr["leverage"][rows], tr["portfolio_exposure"][rows]),
        volatility_adjustment(tr["volatility"][rows]),
        config.sizing_weights,
    )
    return np.atleast_1d(meta), np.atleast_1d(sizing)


def close_order(tr: Arrays, mask: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Rows selected by ``mask`` in close order (close time, then decision)."""
    rows = np.flatnonzero(mask)
    order = np.lexsort((tr["decision_id"][rows], tr["closed_ts"][rows]))
    return rows[order].astype(np.int64)


def logged_actions(tr: Arrays, rows: NDArray[np.int64]) -> tuple[NDArray[np.int64], ...]:
    """Codes of the logged meta and sizing actions of some rows."""
    meta = meta_space.encode(
        _name_codes(tr["strategy"][rows], Strategy),
        _name_codes(tr["trade_model"][rows], Model),
        _name_codes(tr["weight_action"][rows], WeightAction),
    )
    sizing = sizing_space.encode(tr["size_multiplier"][rows], tr["leverage"][rows])
    return np.atleast_1d(meta), np.atleast_1d(sizing)


def logged_transitions(tr: Arrays, config: ReplayConfig) -> LoggedTransitions:
    """Both agents' logged transitions of the traded decisions, in close order."""
    rows = close_order(tr, traded_mask(tr))
    meta_actions, sizing_actions = logged_actions(tr, rows)
    meta_rewards, sizing_rewards = logged_rewards(tr, rows, config)
    dones = episode_ends(tr["closed_ts"][rows], config.episode)
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
        dones=dones,
        terminals=np.zeros(len(rows), dtype=bool),
    )


def make_agents(
    config: ReplayConfig,
) -> tuple[MetaStrategyAgent, PositionSizingAgent, EpisodeTracker]:
    """Fresh agents and tracker configured as ``config`` says."""
    meta = MetaStrategyAgent(config.meta_space, **config.hyperparameters("meta_strategy"))
    sizing = PositionSizingAgent(config.sizing_space, **config.hyperparameters("position_sizing"))
    tracker = EpisodeTracker({meta.name: meta, sizing.name: sizing}, gamma=config.gamma)
    return meta, sizing, tracker


def train_logged_agents(
    tr: Arrays,
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
        events.append((tr["ts"][r], 1, int(tr["decision_id"][r]), i))
        events.append((tr["trade_ts"][r], 2, int(tr["decision_id"][r]), i))
        events.append((tr["closed_ts"][r], 0, int(tr["decision_id"][r]), i))
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
                meta_strategy=float(lt.meta_rewards[i]),
                position_sizing=float(lt.sizing_rewards[i]),
            )
            tracker.end_episode(decision)
            if lt.dones[i]:
                meta.end_episode()
                sizing.end_episode()
    return lt


# --- simulated mode ------------------------------------------------------------------------


class SimulationInputs(NamedTuple):
    """What the simulator needs per traded decision (D of them, in decision-time order).

    Path ``p = strategy * 2 + (direction > 0)`` indexes the 8 counterfactual price paths
    of a decision (each strategy's exit rule, long or short).
    """

    rows: NDArray[np.int64]
    """Row of each decision in the transitions arrays."""
    ts: NDArray[Any]
    """Signal time."""
    regime: NDArray[np.int64]
    volatility: NDArray[np.float64]
    market_pressure: NDArray[np.float64]
    confidence: NDArray[np.float64]
    """Best model confidence of the decision point (the meta state's ``confidence``)."""
    directions: NDArray[np.int64]
    """(D, 4) each model's direction."""
    confidences: NDArray[np.float64]
    """(D, 4) each model's confidence."""
    predicted: NDArray[np.int64]
    """(D, 4) each model's predicted regime code."""
    logged_meta: NDArray[np.int64]
    logged_sizing: NDArray[np.int64]
    exit_ts: NDArray[Any]
    """(D, 8) close time of each path."""
    ret: NDArray[np.float64]
    """(D, 8) directional return of each path."""
    mae: NDArray[np.float64]
    """(D, 8) maximum adverse excursion of each path."""
    hold_regime: NDArray[np.int64]
    """(D, 8) actual regime over each path's holding period."""
    close_volatility: NDArray[np.float64]
    close_market_pressure: NDArray[np.float64]
    close_regime: NDArray[np.int64]


def decision_order(tr: Arrays, mask: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Rows selected by ``mask`` in decision-time order."""
    rows = np.flatnonzero(mask)
    return rows[np.argsort(tr["decision_id"][rows], kind="stable")].astype(np.int64)


def last_bar_before(tr: Arrays, bars: Arrays, rows: NDArray[np.int64], end: Any) -> Any:
    """Per row, the last bar of its symbol stamped before ``end`` (None: the symbol's last)."""
    last = tr["last_idx"][rows].astype(np.int64)
    if end is None:
        return last
    first = tr["first_idx"][rows].astype(np.int64)
    cut = last.copy()
    for f in np.unique(first):
        sel = first == f
        l_idx = int(last[sel][0])
        n_before = np.searchsorted(bars["ts"][f : l_idx + 1], np.datetime64(end), side="left")
        cut[sel] = f + n_before - 1
    return np.maximum(cut, tr["bar_idx"][rows].astype(np.int64))


def counterfactual_paths(
    tr: Arrays, bars: Arrays, rows: NDArray[np.int64], end: Any = None
) -> PathOutcome:
    """Walk the 8 counterfactual paths of each decision; arrays of shape (D * 8,).

    With ``end``, no path runs past the last bar before it (walk-forward: a training
    window never looks at the holdout's prices).
    """
    strategies = np.tile(np.repeat(np.arange(len(Strategy)), 2), len(rows))
    directions = np.tile(np.asarray([-1, 1]), len(rows) * len(Strategy))
    per_path = np.repeat(rows, N_PATHS)
    return walk_paths(
        bars["close"],
        bars["high"],
        bars["low"],
        tr["bar_idx"][per_path],
        np.repeat(last_bar_before(tr, bars, rows, end), N_PATHS),
        directions,
        tr["volatility"][per_path],
        strategies,
    )


def path_windows(
    tr: Arrays, rows: NDArray[np.int64], paths: PathOutcome, lookback: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Bar windows whose features the paths need: holding periods, then close states."""
    per_path = np.repeat(rows, N_PATHS)
    entry = tr["bar_idx"][per_path].astype(np.int64)
    first = tr["first_idx"][per_path].astype(np.int64)
    close_lo = np.maximum(paths.exit_idx - lookback + 1, first)
    return np.r_[entry, close_lo], np.r_[paths.exit_idx, paths.exit_idx]


def simulation_inputs(
    tr: Arrays,
    bars: Arrays,
    rows: NDArray[np.int64],
    paths: PathOutcome,
    windows: Arrays,
) -> SimulationInputs:
    """Assemble the simulator's arrays from transitions, bars, paths and window features."""
    d = len(rows)
    shape = (d, N_PATHS)
    n = d * N_PATHS
    meta_logged, sizing_logged = logged_actions(tr, rows) if d else (np.zeros(0, np.int64),) * 2
    return SimulationInputs(
        rows=rows,
        ts=tr["ts"][rows],
        regime=_regime_codes(tr["regime"][rows]),
        volatility=tr["volatility"][rows].astype(np.float64),
        market_pressure=tr["market_pressure"][rows].astype(np.float64),
        confidence=tr["confidence"][rows].astype(np.float64),
        directions=np.stack([tr[f"dir_{m}"][rows] for m in MODEL_COLUMNS], axis=1).astype(np.int64),
        confidences=np.stack([tr[f"conf_{m}"][rows] for m in MODEL_COLUMNS], axis=1).astype(
            np.float64
        ),
        predicted=np.stack([_regime_codes(tr[f"regime_{m}"][rows]) for m in MODEL_COLUMNS], axis=1),
        logged_meta=meta_logged,
        logged_sizing=sizing_logged,
        exit_ts=bars["ts"][paths.exit_idx].reshape(shape),
        ret=paths.ret.reshape(shape),
        mae=paths.mae.reshape(shape),
        hold_regime=windows["regime_code"][:n].astype(np.int64).reshape(shape),
        close_volatility=windows["volatility"][n:].astype(np.float64).reshape(shape),
        close_market_pressure=windows["market_pressure"][n:].astype(np.float64).reshape(shape),
        close_regime=windows["regime_code"][n:].astype(np.int64).reshape(shape),
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

    def exposure(self) -> float:
        return sum(self.open_notional.values()) / self.equity

    def winrate(self) -> float:
        return float(trailing_winrate(self.pnls, self.window))

    def health(self) -> float:
        return self.equity / self.peak

    def slope(self) -> float:
        return float(equity_curve_slope(self.curve[-self.window :]))

    def close(self, key: int, pnl: float) -> float:
        self.open_notional.pop(key, None)
        self.pnls.append(pnl)
        self.equity += MARGIN_UNIT * pnl / 100.0
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


def _choose(agent: Any, state: int, key: int, policy: str, logged: int, learn: bool) -> int:
    if policy == "logged":
        action = logged
    elif policy == "greedy":
        action = agent.greedy_action(state)
    else:
        agent.set_current_state(state, key=key)
        action = agent.select_action(key=key)
    if learn:
        if policy != "egreedy":
            agent.set_current_state(state, key=key)
        agent.set_executed_action(action, key=key)
    return action


def simulate(
    inputs: SimulationInputs,
    meta: MetaStrategyAgent,
    sizing: PositionSizingAgent,
    config: ReplayConfig,
    *,
    policy: str = "egreedy",
    sizing_policy: str | None = None,
    learn: bool = True,
    tracker: EpisodeTracker | None = None,
    winrate_window: int = 20,
) -> SimulationResult:
    """Run the agents over the decisions in time order, outcomes from the price path.

    ``policy`` (and ``sizing_policy`` for the sizing agent, default the same):
    ``egreedy`` (training), ``greedy`` (evaluation of a Q-table) or ``logged`` (the
    behaviour policy's own actions through the same outcome model). With ``learn`` the
    agents make their TD updates at each close (SPEC A5 step 3); ε decays at each close
    (one position, one episode). Once equity falls to zero the account is bust and no
    later decision is traded.
    """
    sizing_policy = sizing_policy or policy
    for name, value in (("policy", policy), ("sizing_policy", sizing_policy)):
        if value not in ("egreedy", "greedy", "logged"):
            raise ValueError(f"{name}={value!r}: expected egreedy, greedy or logged")
    account = _Account(window=winrate_window)
    pending: list[tuple[Any, int, int]] = []
    opened: dict[int, _Open] = {}
    records: list[tuple[Any, ...]] = []
    w_meta, w_sizing = config.meta_weights, config.sizing_weights

    def close_next() -> None:
        _, _, key = heapq.heappop(pending)
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
                {
                    "regime": inputs.close_regime[d, p],
                    "volatility": inputs.close_volatility[d, p],
                    "market_pressure": inputs.close_market_pressure[d, p],
                    "confidence": inputs.confidence[d],
                    "previous_winrate": account.winrate(),
                    "account_health": account.health(),
                }
            )
            sizing_next = config.sizing_space.encode(
                {
                    "signal_confidence": inputs.confidences[d, o.model],
                    "portfolio_exposure": account.exposure(),
                    "recent_winrate": account.winrate(),
                    "volatility": inputs.close_volatility[d, p],
                    "equity_curve_slope": account.slope(),
                }
            )
            meta.update(r_meta, int(meta_next), key=key)
            sizing.update(r_sizing, int(sizing_next), key=key)
            if tracker is not None:
                tracker.add_step(key, meta_strategy=r_meta, position_sizing=r_sizing)
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
        if account.equity <= 0.0:
            continue  # the account is bust: no margin left to trade
        meta_state = int(
            config.meta_space.encode(
                {
                    "regime": inputs.regime[d],
                    "volatility": inputs.volatility[d],
                    "market_pressure": inputs.market_pressure[d],
                    "confidence": inputs.confidence[d],
                    "previous_winrate": account.winrate(),
                    "account_health": account.health(),
                }
            )
        )
        meta_action = _choose(meta, meta_state, d, policy, int(inputs.logged_meta[d]), learn)
        strategy, model, weight = (int(x) for x in meta_space.decode(meta_action))
        if tracker is not None and learn:
            tracker.start_episode(d)
        sizing_state = int(
            config.sizing_space.encode(
                {
                    "signal_confidence": inputs.confidences[d, model],
                    "portfolio_exposure": account.exposure(),
                    "recent_winrate": account.winrate(),
                    "volatility": inputs.volatility[d],
                    "equity_curve_slope": account.slope(),
                }
            )
        )
        sizing_action = _choose(
            sizing, sizing_state, d, sizing_policy, int(inputs.logged_sizing[d]), learn
        )
        size, leverage = sizing_space.decode(sizing_action)
        w_scale = float(WEIGHT_SCALES[weight])
        path = strategy * 2 + (1 if inputs.directions[d, model] > 0 else 0)
        pnl, drawdown, liquidated = position_pnl(
            inputs.ret[d, path], inputs.mae[d, path], size, leverage, w_scale
        )
        notional = size * w_scale * MARGIN_UNIT * leverage
        exposure_total = account.exposure() + notional / account.equity
        account.open_notional[d] = notional
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


# --- the compiled evaluation ------------------------------------------------------------------

POLICY_CODES = {"logged": 0, "greedy": 1}
"""Policies the compiled evaluation plays (it never explores nor learns)."""


class _SpaceArrays(NamedTuple):
    edges: NDArray[np.float64]
    n_edges: NDArray[np.int64]
    categorical: NDArray[np.bool_]
    radix: NDArray[np.int64]


def _space_arrays(space: StateSpace) -> _SpaceArrays:
    """A state space as flat arrays for compiled encoding (same bins as ``encode``)."""
    width = max([len(f.edges) for f in space.features] + [1])
    edges = np.full((len(space.features), width), np.inf)
    n_edges = np.zeros(len(space.features), np.int64)
    categorical = np.zeros(len(space.features), bool)
    sizes = [f.n_bins for f in space.features]
    for i, f in enumerate(space.features):
        edges[i, : len(f.edges)] = f.edges
        n_edges[i] = len(f.edges)
        categorical[i] = bool(f.categories)
    radix = np.asarray([int(np.prod(sizes[i + 1 :])) for i in range(len(sizes))], np.int64)
    return _SpaceArrays(edges, n_edges, categorical, radix)


@numba.njit(cache=True, nogil=True)
def _encode(values: Any, space_edges: Any, n_edges: Any, categorical: Any, radix: Any) -> int:
    index = 0
    for f in range(values.shape[0]):
        if categorical[f]:
            b = int(values[f])
        else:
            b = 0
            for e in range(n_edges[f]):
                if space_edges[f, e] <= values[f]:
                    b += 1
        index += b * radix[f]
    return index


@numba.njit(cache=True, nogil=True)
def _heap_push(keys: Any, ids: Any, size: int, key: int, ident: int) -> int:
    i = size
    keys[i] = key
    ids[i] = ident
    while i > 0:
        parent = (i - 1) // 2
        if keys[parent] < keys[i] or (keys[parent] == keys[i] and ids[parent] <= ids[i]):
            break
        keys[i], keys[parent] = keys[parent], keys[i]
        ids[i], ids[parent] = ids[parent], ids[i]
        i = parent
    return size + 1


@numba.njit(cache=True, nogil=True)
def _heap_pop(keys: Any, ids: Any, size: int) -> int:
    size -= 1
    keys[0], ids[0] = keys[size], ids[size]
    i = 0
    while True:
        left, right, best = 2 * i + 1, 2 * i + 2, i
        if left < size and (
            keys[left] < keys[best] or (keys[left] == keys[best] and ids[left] < ids[best])
        ):
            best = left
        if right < size and (
            keys[right] < keys[best] or (keys[right] == keys[best] and ids[right] < ids[best])
        ):
            best = right
        if best == i:
            return size
        keys[i], keys[best] = keys[best], keys[i]
        ids[i], ids[best] = ids[best], ids[i]
        i = best


@numba.njit(cache=True, nogil=True)
def _evaluate_core(
    ts: Any,
    exit_ts: Any,
    regime: Any,
    volatility: Any,
    pressure: Any,
    confidence: Any,
    directions: Any,
    confidences: Any,
    ret: Any,
    mae: Any,
    logged_meta: Any,
    logged_sizing: Any,
    q_meta: Any,
    q_sizing: Any,
    meta_policy: int,
    sizing_policy: int,
    meta_sp: Any,
    sizing_sp: Any,
    weight_scales: Any,
    sizes: Any,
    leverages: Any,
    window: int,
    initial_equity: float,
    margin_unit: float,
    out_int: Any,
    out_float: Any,
) -> None:
    n = ts.shape[0]
    heap_keys = np.empty(n, np.int64)
    heap_ids = np.empty(n, np.int64)
    heap_size = 0
    pnls = np.empty(n, np.float64)
    curve = np.empty(n, np.float64)
    notional = np.zeros(n, np.float64)
    open_sum = 0.0
    equity = initial_equity
    peak = initial_equity
    n_closed = 0
    meta_values = np.empty(6, np.float64)
    sizing_values = np.empty(5, np.float64)
    path_of = np.empty(n, np.int64)
    exposure_total = np.empty(n, np.float64)
    pnl_of = np.empty(n, np.float64)
    dd_of = np.empty(n, np.float64)
    liq_of = np.empty(n, np.int64)
    m_state = np.empty(n, np.int64)
    m_action = np.empty(n, np.int64)
    s_state = np.empty(n, np.int64)
    s_action = np.empty(n, np.int64)
    n_models = directions.shape[1]
    n_weights = weight_scales.shape[0]
    n_levs = leverages.shape[0]
    for d in range(n + 1):
        while heap_size > 0 and (d == n or heap_keys[0] <= ts[d]):
            k = heap_ids[0]
            heap_size = _heap_pop(heap_keys, heap_ids, heap_size)
            open_sum -= notional[k]
            pnls[n_closed] = pnl_of[k]
            equity += margin_unit * pnl_of[k] / 100.0
            curve[n_closed] = equity
            peak = max(peak, equity)
            n_closed += 1
            sharpe = account_kernels.trailing_sharpe(pnls, max(0, n_closed - window), n_closed)
            row = n_closed - 1
            out_int[row, 0] = k
            out_int[row, 1] = m_state[k]
            out_int[row, 2] = m_action[k]
            out_int[row, 3] = s_state[k]
            out_int[row, 4] = s_action[k]
            out_int[row, 5] = path_of[k]
            out_int[row, 6] = liq_of[k]
            out_float[row, 0] = pnl_of[k]
            out_float[row, 1] = dd_of[k]
            out_float[row, 2] = equity
            out_float[row, 3] = exposure_total[k]
            out_float[row, 4] = sharpe
        if d == n:
            break
        if equity <= 0.0:
            continue  # the account is bust: no margin left to trade
        winrate = account_kernels.trailing_winrate(pnls, max(0, n_closed - window), n_closed)
        slope = account_kernels.trailing_slope(curve, max(0, n_closed - window), n_closed)
        meta_values[0] = regime[d]
        meta_values[1] = volatility[d]
        meta_values[2] = pressure[d]
        meta_values[3] = confidence[d]
        meta_values[4] = winrate
        meta_values[5] = equity / peak
        ms = _encode(meta_values, meta_sp[0], meta_sp[1], meta_sp[2], meta_sp[3])
        ma = logged_meta[d] if meta_policy == 0 else int(np.argmax(q_meta[ms]))
        strategy = ma // (n_models * n_weights)
        model = (ma // n_weights) % n_models
        weight = ma % n_weights
        sizing_values[0] = confidences[d, model]
        sizing_values[1] = open_sum / equity
        sizing_values[2] = winrate
        sizing_values[3] = volatility[d]
        sizing_values[4] = slope
        ss = _encode(sizing_values, sizing_sp[0], sizing_sp[1], sizing_sp[2], sizing_sp[3])
        sa = logged_sizing[d] if sizing_policy == 0 else int(np.argmax(q_sizing[ss]))
        size = sizes[sa // n_levs]
        lev = leverages[sa % n_levs]
        w_scale = weight_scales[weight]
        path = strategy * 2 + (1 if directions[d, model] > 0 else 0)
        effective = size * w_scale * lev
        adverse = mae[d, path]
        if effective * adverse >= 1.0:
            pnl_of[d] = -100.0
            liq_of[d] = 1
        else:
            pnl_of[d] = 100.0 * effective * ret[d, path]
            liq_of[d] = 0
        dd_of[d] = 100.0 * min(effective * adverse, 1.0)
        notional[d] = size * w_scale * margin_unit * lev
        exposure_total[d] = (open_sum + notional[d]) / equity
        open_sum += notional[d]
        path_of[d] = path
        m_state[d] = ms
        m_action[d] = ma
        s_state[d] = ss
        s_action[d] = sa
        heap_size = _heap_push(heap_keys, heap_ids, heap_size, exit_ts[d, path], d)


def evaluate_policies(
    inputs: SimulationInputs,
    config: ReplayConfig,
    q_meta: NDArray[np.float64] | None,
    q_sizing: NDArray[np.float64] | None,
    winrate_window: int = 20,
) -> SimulationResult:
    """Compiled ``simulate`` without learning: greedy Q-tables, or ``None`` for logged.

    Same decisions, outcomes, account and rewards as ``simulate(..., learn=False)``
    with policy ``greedy`` / ``logged`` (a test proves them equal); rewards are computed
    after the loop with ``rlv2.rewards``.
    """
    n = len(inputs.rows)
    meta_sp = _space_arrays(config.meta_space)
    sizing_sp = _space_arrays(config.sizing_space)
    empty_meta = np.zeros((1, meta_space.n))
    empty_sizing = np.zeros((1, sizing_space.n))
    out_int = np.full((n, 7), -1, np.int64)
    out_float = np.zeros((n, 5), np.float64)
    _evaluate_core(
        inputs.ts.astype("datetime64[ns]").astype(np.int64),
        np.ascontiguousarray(inputs.exit_ts.astype("datetime64[ns]").astype(np.int64)),
        inputs.regime.astype(np.float64),
        inputs.volatility,
        inputs.market_pressure,
        inputs.confidence,
        inputs.directions,
        inputs.confidences,
        inputs.ret,
        inputs.mae,
        inputs.logged_meta,
        inputs.logged_sizing,
        empty_meta if q_meta is None else np.ascontiguousarray(q_meta, np.float64),
        empty_sizing if q_sizing is None else np.ascontiguousarray(q_sizing, np.float64),
        POLICY_CODES["logged" if q_meta is None else "greedy"],
        POLICY_CODES["logged" if q_sizing is None else "greedy"],
        tuple(meta_sp),
        tuple(sizing_sp),
        WEIGHT_SCALES.astype(np.float64),
        np.asarray(SIZE_MULTIPLIERS, np.float64),
        np.asarray(LEVERAGES, np.int64),
        winrate_window,
        INITIAL_EQUITY,
        MARGIN_UNIT,
        out_int,
        out_float,
    )
    traded = out_int[:, 0] >= 0  # decisions after a bust are not traded
    out_int, out_float = out_int[traded], out_float[traded]
    d, path = out_int[:, 0], out_int[:, 5]
    model = (out_int[:, 2] // len(WeightAction)) % len(Model)
    alignment = regime_alignment(
        inputs.predicted[d, model], inputs.hold_regime[d, path], inputs.confidences[d, model]
    )
    pnl, dd, equity, exposure, sharpe = (out_float[:, i] for i in range(5))
    leverage = np.asarray(LEVERAGES)[out_int[:, 4] % len(LEVERAGES)]
    r_meta = meta_strategy_reward(pnl, dd, sharpe, alignment, config.meta_weights)
    r_sizing = position_sizing_reward(
        pnl,
        risk_penalty(leverage, exposure),
        volatility_adjustment(inputs.volatility[d]),
        config.sizing_weights,
    )
    return SimulationResult(
        decision=d,
        meta_state=out_int[:, 1],
        meta_action=out_int[:, 2],
        sizing_state=out_int[:, 3],
        sizing_action=out_int[:, 4],
        pnl_pct=pnl,
        max_drawdown_pct=dd,
        liquidated=out_int[:, 6].astype(bool),
        meta_reward=np.atleast_1d(np.asarray(r_meta, np.float64)),
        sizing_reward=np.atleast_1d(np.asarray(r_sizing, np.float64)),
        equity=equity,
    )


# --- the compiled fast path of the simulated mode --------------------------------------------


def counterfactual_rewards(
    inputs: SimulationInputs, tr: Arrays, config: ReplayConfig
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
    logged_size = tr["size_multiplier"][rows].astype(np.float64)
    logged_lev = tr["leverage"][rows].astype(np.float64)
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
    sharpe = tr["close_sharpe_signal"][rows].astype(np.float64)
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
    equity = tr["equity"][rows].astype(np.float64)
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


AGENTS = ("meta_strategy", "position_sizing")
MODES = ("logged", "explore")


def kernel_inputs(
    agent: str,
    mode: str,
    tr: Arrays,
    config: ReplayConfig,
    inputs: SimulationInputs | None = None,
) -> KernelInputs:
    """Build one agent's kernel events: ``logged`` transitions or ``explore`` rewards.

    ``explore`` needs the simulation inputs and is the compiled fast path of the
    simulated mode (see ``counterfactual_rewards`` for what it holds fixed).
    """
    if agent not in AGENTS:
        raise ValueError(f"agent={agent!r}: expected one of {AGENTS}")
    if mode == "logged":
        lt = logged_transitions(tr, config)
        if agent == "meta_strategy":
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
    if mode != "explore":
        raise ValueError(f"mode={mode!r}: expected one of {MODES}")
    if inputs is None:
        raise ValueError("mode='explore' needs the simulation inputs")
    rows = inputs.rows
    r_meta, r_sizing = counterfactual_rewards(inputs, tr, config)
    dones = episode_ends(tr["closed_ts"][rows], config.episode)
    terminals = np.zeros(len(rows), dtype=bool)
    if agent == "meta_strategy":
        states = config.meta_space.encode(meta_features(tr, rows, False))
        next_states = config.meta_space.encode(meta_features(tr, rows, True))
        rewards = r_meta
    else:
        states = config.sizing_space.encode(sizing_features(tr, rows, False))
        next_states = config.sizing_space.encode(sizing_features(tr, rows, True))
        rewards = r_sizing
    return KernelInputs(
        np.atleast_1d(states), rewards, np.atleast_1d(next_states), dones, terminals, None
    )


def train_kernel(
    q: NDArray[np.float64], events: KernelInputs, config: ReplayConfig, agent: str
) -> ReplayStats:
    """Q-learning of one agent over its kernel events, compiled; ``q`` updated in place."""
    return replay(q, **events.kwargs(), **config.hyperparameters(agent))
