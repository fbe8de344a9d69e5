"""The pipeline's domain steps: split the history, train an agent, evaluate, gate.

Pure of Prefect and MLflow: ``flows/`` wraps these functions in tasks and
``rlv2.tracking`` records what they return. Data comes in through ``rlv2.history``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from rlv2 import history
from rlv2.console import progress
from rlv2.coverage import Coverage
from rlv2.domain import Agent, Learner, ReplayMode, agent_spec, parse_enum
from rlv2.evaluation import (
    METRICS,
    Bootstrap,
    PromotionDecision,
    compare_policies,
    policy_metrics,
    visited_share,
)
from rlv2.full_information import full_information_q
from rlv2.qlearning import ReplayStats, replay_sweep
from rlv2.records import Bars, Transitions
from rlv2.replay import (
    ReplayConfig,
    SimulationInputs,
    SimulationResult,
    evaluate_policies,
    kernel_inputs,
    prepare_inputs,
    train_kernel,
)
from rlv2.rng import stream_seed
from rlv2.states import FeatureConfig

GATE_METRICS = ("reward", *METRICS)
"""What the promotion gate may compare: ``reward`` is each agent's own SPEC A1 reward."""
CURVE_POINTS = 1_000
"""Most points of a logged learning curve; longer ones are bucket means."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run is configured by; logged whole as the run's config."""

    replay: ReplayConfig = field(default_factory=ReplayConfig)
    """Hyperparameters, reward weights, state bins, episode window."""
    features: FeatureConfig = field(default_factory=FeatureConfig)
    """Windows and rules of the feature SQL."""
    mode: str = "explore"
    """``explore``: counterfactual rewards, the simulated mode's compiled path;
    ``logged``: off-policy on the system's own actions."""
    learner: str = "full-information"
    """``full-information`` (every action of the visited state from its counterfactual
    reward, shrunk toward coarser states; needs ``mode = explore``; the default, as it
    measured best on the planted-signal suite) or ``q-learning`` (SPEC A4 as written)."""
    prior_strength: float = -1.0
    """Full-information learner: pseudo-events of the coarser state behind each state's
    estimate; negative (the default): estimated from the data (empirical Bayes)."""
    epochs: int = 20
    """Passes over the training window (q-learning); ε carries over from pass to pass."""
    holdout_fraction: float = 0.2
    """Share of the decision points (by count, the latest) kept as the final holdout."""
    min_holdout_trades: int = 30
    """Fewest traded decisions the holdout must hold before a run registers or gates
    anything: a comparison on fewer says little (``rlv2.sufficiency``)."""
    min_visited_states: int = 5
    """Fewest distinct states each agent must have met in training before its table is
    registered: a table learned on fewer is mostly its starting values."""
    metric: str = "reward"
    """Per-trade quantity the promotion gate compares: ``reward`` (the agent's own SPEC A1
    reward), ``pnl_pct``, ``meta_reward`` or ``sizing_reward``."""
    margin: float = 0.0
    """How much the candidate's mean metric must exceed the champion's."""
    n_boot: int = 2000
    """Bootstrap resamples of the gate's confidence interval."""
    confidence: float = 0.95
    """Confidence level of the gate's interval."""
    bootstrap: str = "newey-west-symbols"
    """How the gate builds the interval of the per-trade differences, in time order:
    ``newey-west-symbols`` (the default: a t interval of the symbol-weighted mean with
    the long-run variance along each symbol's decisions and fixed-b critical values),
    ``newey-west`` (the plain mean's t interval, bandwidth from 1.3 sqrt(n): the previous
    default),
    or a resampling: ``stationary`` (blocks of random length, their mean estimated from
    the data), ``circular`` (blocks of one estimated length) or ``iid`` (trade by trade:
    the original gate, which promotes too often when differences persist)."""
    pnl_tolerance: float = 0.0
    """Guardrail: refuse a candidate whose mean pnl per holdout trade (pnl_pct, percent of
    margin) is more than this below the champion's, whatever its metric says (inf: off)."""
    drawdown_tolerance: float = 1.0
    """Guardrail: refuse a candidate whose max drawdown on the holdout (percent of peak
    equity) exceeds the champion's by more than this many points (inf: off)."""

    def __post_init__(self) -> None:
        mode = parse_enum(ReplayMode, self.mode, "mode")
        learner = parse_enum(Learner, self.learner, "learner")
        if learner is Learner.FULL_INFORMATION and mode is not ReplayMode.EXPLORE:
            raise ValueError(
                "learner='full-information' needs mode='explore' (every action's reward); "
                "the logged mode knows only the logged action's"
            )
        if not np.isfinite(self.prior_strength):
            raise ValueError(f"prior_strength={self.prior_strength} must be a finite number")
        if self.epochs < 1:
            raise ValueError(f"epochs={self.epochs} must be >= 1")
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction={self.holdout_fraction} must be in (0, 1)")
        for name in ("min_holdout_trades", "min_visited_states", "n_boot"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence={self.confidence} must be in (0, 1)")
        if not np.isfinite(self.margin):
            raise ValueError(f"margin={self.margin} must be a finite number")
        if self.metric not in GATE_METRICS:
            raise ValueError(f"metric={self.metric!r}: expected one of {GATE_METRICS}")
        parse_enum(Bootstrap, self.bootstrap, "bootstrap")
        for name in ("pnl_tolerance", "drawdown_tolerance"):
            value = getattr(self, name)
            if not value >= 0.0:  # also refuses NaN
                raise ValueError(f"{name}={value} must be >= 0 (inf: no guardrail)")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready configuration, state spaces as their bin edges."""
        out = asdict(self)
        out["replay"]["meta_space"] = self.replay.meta_space.to_dict()
        out["replay"]["sizing_space"] = self.replay.sizing_space.to_dict()
        return json.loads(json.dumps(out, default=str))

    def with_hyperparameters(self, **changes: Any) -> TrainConfig:
        """A copy with some ``ReplayConfig`` fields changed."""
        return replace(self, replay=replace(self.replay, **changes))


class Split(NamedTuple):
    """A walk-forward split: training ``[train_start, holdout_start)``, then the holdout."""

    train_start: datetime
    holdout_start: datetime
    holdout_end: datetime


def walk_forward_split(first: datetime, last: datetime, holdout_start: datetime) -> Split:
    """Training ``[first, holdout_start)`` and holdout ``[holdout_start, last]``, disjoint."""
    if first is None or last is None or not first < holdout_start <= last:
        raise ValueError(
            f"cannot split decisions from {first} to {last} at {holdout_start}: "
            "the history needs decisions on both sides"
        )
    return Split(first, holdout_start, last + timedelta(microseconds=1))


class TrainingWindows(NamedTuple):
    """What a training run learned from and what it kept out, each ``[start, end)``.

    Recorded as tags on the run and on every version it registers (:meth:`tags`), so that
    the promotion gate judges a version on its own holdout, never on data it trained on.
    """

    train_start: datetime
    train_end: datetime
    holdout_start: datetime
    holdout_end: datetime

    @classmethod
    def of_split(cls, split: Split) -> TrainingWindows:
        """The windows of a walk-forward split: training ends where the holdout starts."""
        return cls(split.train_start, split.holdout_start, split.holdout_start, split.holdout_end)

    def tags(self) -> dict[str, str]:
        """The windows as tags (``train_start`` ... ``holdout_end``), times as ``str`` gives."""
        return {name: str(value) for name, value in self._asdict().items()}

    @classmethod
    def from_tags(cls, tags: Mapping[str, str], version: str) -> TrainingWindows:
        """The windows a version's tags record; ``version`` names it in errors.

        Raises ValueError when the tags hold none of them (a version registered before
        rlv2 recorded them), only some, an unreadable time, or a holdout that starts
        inside the training window.
        """
        missing = [name for name in cls._fields if name not in tags]
        if len(missing) == len(cls._fields):
            raise ValueError(
                f"{version} records no training or holdout window (registered before rlv2 "
                "recorded them), so its own holdout is unknown: retrain it (rlv2 train or "
                "rlv2 sweep) and gate the new version"
            )
        if missing:
            raise ValueError(f"{version}: tags {', '.join(missing)} missing; retrain it")
        values = {}
        for name in cls._fields:
            try:
                values[name] = datetime.fromisoformat(tags[name])
            except ValueError:
                raise ValueError(f"{version}: tag {name}={tags[name]!r} is not a time") from None
        windows = cls(**values)
        if windows.holdout_start < windows.train_end:
            raise ValueError(
                f"{version}: its recorded holdout starts at {windows.holdout_start}, inside "
                f"its training window {windows.train_start} .. {windows.train_end}"
            )
        return windows


class HoldoutRefused(ValueError):
    """A promote request whose holdout would overlap the candidate's training window."""


def gate_holdout(
    recorded: TrainingWindows,
    version: str,
    last_decision: datetime | None,
    requested_start: datetime | None = None,
    requested: str = "",
) -> tuple[datetime, datetime]:
    """The holdout ``[start, end)`` the gate judges a version on: the one it recorded.

    It starts where the recorded holdout starts; when the history has grown since
    training (decisions after the recorded end), it runs to the newest decision, since
    every decision from the recorded start on is one the version never saw. A requested
    holdout (``requested_start``, described by ``requested`` such as
    ``holdout_fraction=0.5``) that would start inside the training window raises
    :class:`HoldoutRefused`, naming the version, its training window and the request; one
    that would not is only checked: the recorded holdout is used either way.
    """
    if requested_start is not None and requested_start < recorded.train_end:
        raise HoldoutRefused(
            f"{version} was trained on {recorded.train_start} .. {recorded.train_end}; the "
            f"requested holdout ({requested}) from {requested_start} overlaps it: refused "
            f"(without it the gate uses the recorded holdout from {recorded.holdout_start})"
        )
    end = recorded.holdout_end
    if last_decision is not None and last_decision >= end:
        end = last_decision + timedelta(microseconds=1)
    return recorded.holdout_start, end


@dataclass(frozen=True)
class WindowData:
    """Everything the replay needs about one time window, as arrays."""

    start: datetime | None
    end: datetime | None
    transitions: Transitions
    """One row per decision point and executed trade (``rlv2.history.load_transitions``)."""
    bars: Bars
    inputs: SimulationInputs
    """Traded decisions (closed inside the window) with their counterfactual paths."""
    n_incomplete: int = 0
    """Traded decisions left out of ``inputs`` because some model gave no signal on them."""
    recorded_equity: bool = False
    """Whether the account's equity is the live system's recorded one (the ``account``
    table), not the account model's (SPEC C)."""

    @property
    def n_trades(self) -> int:
        """Traded decisions the replay uses."""
        return len(self.inputs.rows)

    def decision_symbols(self) -> NDArray[np.int64]:
        """Each traded decision's symbol, as a code (the gate weighs and orders by it)."""
        symbols = np.asarray(self.transitions.symbol)[self.inputs.rows].astype(str)
        return np.unique(symbols, return_inverse=True)[1].astype(np.int64).reshape(-1)


def load_window(
    con: history.Connection,
    start: datetime | None = None,
    end: datetime | None = None,
    config: FeatureConfig | None = None,
) -> WindowData:
    """Load one window ``[start, end)`` from the history and prepare its replay inputs.

    See ``rlv2.replay.prepare_inputs`` for what a window keeps from its holdout; its
    simulations start from the logged account at ``start`` (``history.account_start``).
    """
    config = config or FeatureConfig()
    loaded = history.load_window(con, start, end, config)
    account = history.account_start(con, start, config)
    inputs, n_incomplete = prepare_inputs(loaded.transitions, loaded.bars, end, config, account)
    recorded = history.has_recorded_equity(con)
    return WindowData(start, end, loaded.transitions, loaded.bars, inputs, n_incomplete, recorded)


class AgentTraining(NamedTuple):
    """A trained Q-table with its learning curves over all epochs."""

    agent: Agent
    q: NDArray[np.float64]
    epochs: list[ReplayStats]
    n_events: int
    n_states_visited: int = 0
    """Distinct states among the training events."""
    coverage: Coverage | None = None
    """Training events per state and the learner: what a served answer stood on."""

    def curves(self, max_points: int | None = None) -> dict[str, NDArray[Any]]:
        """Per-episode reward, ε and mean |TD error|, epochs concatenated, with their steps.

        With ``max_points``, longer curves are averaged over equal buckets of consecutive
        episodes (a learning curve of a million episodes stays readable and loggable);
        ``steps`` holds each point's first episode.
        """
        full = {
            "episode_reward": np.concatenate([s.episode_reward for s in self.epochs]),
            "epsilon": np.concatenate([s.episode_epsilon for s in self.epochs]),
            "mean_abs_td": np.concatenate([s.episode_mean_abs_td for s in self.epochs]),
        }
        n = len(full["episode_reward"])
        if max_points is None or n <= max_points:
            return {"steps": np.arange(n), **full}
        edges = np.unique(np.linspace(0, n, max_points + 1).astype(np.int64))
        means = {k: np.add.reduceat(v, edges[:-1]) / np.diff(edges) for k, v in full.items()}
        return {"steps": edges[:-1], **means}

    def summary(self) -> dict[str, float]:
        """Final figures of the training: reward per event, |TD|, ε, coverage."""
        last = self.epochs[-1]
        return {
            "events_per_epoch": float(self.n_events),
            "last_epoch_mean_reward": last.total_reward / max(last.n_updates, 1),
            "last_epoch_mean_abs_td": last.mean_abs_td_error,
            "final_epsilon": last.epsilon,
            "visited_share": visited_share(self.q),
        }


def train_agent(
    agent: str,
    window: WindowData,
    config: TrainConfig,
    warm_start: NDArray[np.float64] | None = None,
) -> AgentTraining:
    """Train one agent on a window with the configured learner, compiled."""
    spec = agent_spec(agent)
    if config.learner == Learner.FULL_INFORMATION:
        if warm_start is not None:
            raise ValueError(
                "warm start applies to learner='q-learning'; the full-information learner "
                "estimates every value from the window itself"
            )
        return train_full_information(spec.agent, window, config)
    shape = (config.replay.state_space(spec.agent).n_states, spec.n_actions)
    if warm_start is not None and warm_start.shape != shape:
        raise ValueError(
            f"warm start Q-table of {agent} has shape {warm_start.shape}, expected {shape} "
            "(were the state bins changed?)"
        )
    q = np.zeros(shape) if warm_start is None else np.array(warm_start, dtype=np.float64)
    events = kernel_inputs(agent, config.mode, window.transitions, config.replay, window.inputs)
    stats: list[ReplayStats] = []
    epsilon = config.replay.epsilon
    for epoch in range(config.epochs):
        progress(f"training {spec.agent}: epoch {epoch + 1}/{config.epochs}")
        run_config = replace(
            config.replay, epsilon=epsilon, seed=stream_seed(config.replay.seed, epoch)
        )
        result = train_kernel(q, events, run_config, spec.agent)
        stats.append(result)
        epsilon = result.epsilon
    visited = len(np.unique(events.states))
    coverage = Coverage.of_events(events.states, shape[0], Learner.Q_LEARNING)
    return AgentTraining(spec.agent, q, stats, len(events.states), visited, coverage)


def train_full_information(agent: Agent, window: WindowData, config: TrainConfig) -> AgentTraining:
    """The full-information learner's Q-table of one agent, with its one-pass statistics.

    The statistics describe the greedy policy of the finished table on the training
    events: its reward per episode and ``|r - Q(s, a)|`` as the TD error (ε is 0).
    """
    spec = agent_spec(agent)
    progress(f"training {spec.agent} (full-information learner)")
    events = kernel_inputs(
        agent, ReplayMode.EXPLORE, window.transitions, config.replay, window.inputs
    )
    space = config.replay.state_space(agent)
    q, _, _ = full_information_q(
        events.states,
        events.rewards,
        space,
        spec.backoff_levels,
        None if config.prior_strength < 0 else config.prior_strength,
    )
    n = len(events.states)
    greedy = q[events.states].argmax(axis=1) if n else np.zeros(0, np.int64)
    reward = events.rewards[np.arange(n), greedy] if n else np.zeros(0)
    abs_td = np.abs(reward - q[events.states, greedy]) if n else np.zeros(0)
    ends = np.flatnonzero(events.dones)
    starts = np.r_[0, ends[:-1] + 1].astype(np.int64)
    episode_reward = np.add.reduceat(reward, starts) if ends.size else np.zeros(0)
    episode_td = np.add.reduceat(abs_td, starts) / (ends - starts + 1) if ends.size else np.zeros(0)
    partial = int(n - (ends[-1] + 1 if ends.size else 0))
    stats = ReplayStats(
        epsilon=0.0,
        n_updates=n,
        n_episodes=int(ends.size),
        total_reward=float(reward.sum()),
        mean_abs_td_error=float(abs_td.mean()) if n else 0.0,
        episode_reward=episode_reward,
        episode_mean_abs_td=episode_td,
        episode_epsilon=np.zeros(ends.size),
        actions=greedy.astype(np.int64),
        partial_events=partial,
        partial_reward=float(reward[n - partial :].sum()) if partial else 0.0,
        seed=config.replay.seed,
    )
    coverage = Coverage.of_events(
        events.states, space.n_states, Learner.FULL_INFORMATION, spec.backoff_levels
    )
    return AgentTraining(agent, q, [stats], n, len(np.unique(events.states)), coverage)


def train_agent_sweep(
    agent: str, window: WindowData, config: TrainConfig, hypers: list[dict[str, Any]]
) -> list[AgentTraining]:
    """Train K kernel-hyperparameter configurations of one agent in one ``replay_sweep`` pass.

    Each dict of ``hypers`` sets alpha, gamma, epsilon, epsilon_decay, epsilon_min and
    seed; configuration k gives the byte-identical Q-table ``train_agent`` gives with
    ``config.with_hyperparameters(**hypers[k])`` (same per-epoch seeds).
    """
    spec = agent_spec(agent)
    k = len(hypers)
    qs = np.zeros((k, config.replay.state_space(spec.agent).n_states, spec.n_actions))
    events = kernel_inputs(agent, config.mode, window.transitions, config.replay, window.inputs)
    fixed = {
        name: np.asarray([float(h[name]) for h in hypers])
        for name in ("alpha", "gamma", "epsilon_decay", "epsilon_min")
    }
    epsilon = np.asarray([float(h["epsilon"]) for h in hypers])
    per_config: list[list[ReplayStats]] = [[] for _ in range(k)]
    for epoch in range(config.epochs):
        progress(f"sweep {spec.agent}: {k} configurations, epoch {epoch + 1}/{config.epochs}")
        seeds = [stream_seed(int(h["seed"]), epoch) for h in hypers]
        stats = replay_sweep(
            qs,
            **events.kwargs(),
            alpha=fixed["alpha"],
            gamma=fixed["gamma"],
            epsilon_decay=fixed["epsilon_decay"],
            epsilon_min=fixed["epsilon_min"],
            epsilon=epsilon,
            seeds=seeds,
            record_curves=True,
        )
        epsilon = stats.epsilon
        for i in range(k):
            per_config[i].append(stats.for_config(i))
    n, visited = len(events.states), len(np.unique(events.states))
    coverage = Coverage.of_events(events.states, qs.shape[1], Learner.Q_LEARNING)
    return [AgentTraining(spec.agent, qs[i], per_config[i], n, visited, coverage) for i in range(k)]


def evaluate(
    window: WindowData,
    config: TrainConfig,
    meta_q: NDArray[np.float64] | None,
    sizing_q: NDArray[np.float64] | None,
) -> tuple[SimulationResult, dict[str, float]]:
    """Simulate greedy policies on a window (compiled); ``None`` means the logged behaviour."""
    result = evaluate_policies(
        window.inputs, config.replay, meta_q, sizing_q, config.features.winrate_window
    )
    metrics = policy_metrics(
        result, config.replay.meta_space.n_states, config.replay.sizing_space.n_states
    )
    return result, metrics


def promotion_gate(
    agent: str,
    window: WindowData,
    config: TrainConfig,
    candidate_q: NDArray[np.float64],
    production_q: NDArray[np.float64] | None,
    partner_q: NDArray[np.float64] | None,
    champion_name: str,
) -> tuple[PromotionDecision, dict[str, float], dict[str, float]]:
    """Champion/challenger for one agent on the holdout, the other agent held fixed.

    The other agent plays ``partner_q`` (its production table; None: the logged
    behaviour) in both runs; the champion is ``production_q`` or, with none yet, the
    logged behaviour policy. ``config`` gives the metric, margin, interval (``n_boot``,
    ``confidence``, ``bootstrap``, seeded by ``replay.seed``) and the guardrails'
    tolerances. Returns the decision and both runs' metrics.
    """
    spec = agent_spec(agent)
    if spec.agent is Agent.META_STRATEGY:
        cand_result, cand_metrics = evaluate(window, config, candidate_q, partner_q)
        champ_result, champ_metrics = evaluate(window, config, production_q, partner_q)
    else:
        cand_result, cand_metrics = evaluate(window, config, partner_q, candidate_q)
        champ_result, champ_metrics = evaluate(window, config, partner_q, production_q)
    metric = spec.reward_metric if config.metric == "reward" else config.metric
    decision = compare_policies(
        cand_result,
        champ_result,
        metric=metric,
        margin=config.margin,
        n_boot=config.n_boot,
        confidence=config.confidence,
        seed=config.replay.seed,
        champion_name=champion_name,
        bootstrap=config.bootstrap,
        pnl_tolerance=config.pnl_tolerance,
        drawdown_tolerance=config.drawdown_tolerance,
        groups=window.decision_symbols(),
    )
    return decision, cand_metrics, champ_metrics


def refused_agents(decisions: dict[str, dict[str, Any]]) -> list[str]:
    """The agents whose candidate the gate judged and refused (not: already in production).

    ``decisions`` are the gate's, by agent, as the promote flow returns them.
    """
    return [
        agent
        for agent, d in decisions.items()
        if not d.get("promote") and d.get("reason") != "already"
    ]
