"""The series behind the figures, from a run's windows and results, and the figures of a run.

``rlv2.figures`` draws; this module prepares what it draws from the pipeline's objects
(``WindowData``, ``AgentTraining``, ``SimulationResult``): equity curves in time, buy-and-hold
of the underlying, state visits, the gate's differences and bootstrap. Pure: no MLflow, no
Prefect; the flows log what it returns (``rlv2.tracking.log_figure``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from numpy.typing import NDArray

from rlv2 import figures
from rlv2.actions import meta_space
from rlv2.domain import Agent, agent_spec
from rlv2.evaluation import bootstrap_means, paired_differences, paired_groups, policy_metrics
from rlv2.figures import EquityCurve, GateEvidence
from rlv2.pipeline import AgentTraining, TrainConfig, WindowData
from rlv2.replay import SimulationResult, evaluate_policies, kernel_inputs

__all__ = [
    "buy_and_hold",
    "equity_curve",
    "gate_evidence",
    "gate_runs",
    "holdout_table",
    "state_visits",
    "training_figures",
    "training_visits",
]


def state_visits(states: NDArray[np.int64], n_states: int) -> NDArray[np.int64]:
    """How many events fall in each state."""
    return np.bincount(np.asarray(states, dtype=np.int64), minlength=n_states).astype(np.int64)


def training_visits(agent: str, window: WindowData, config: TrainConfig) -> NDArray[np.int64]:
    """Training events per state of ``agent`` on ``window`` (each event once, not per epoch)."""
    events = kernel_inputs(agent, config.mode, window.transitions, config.replay, window.inputs)
    space = config.replay.state_space(agent_spec(agent).agent)
    return state_visits(events.states, space.n_states)


def _close_times(result: SimulationResult, window: WindowData) -> NDArray[Any]:
    """When each simulated trade closed: its decision's exit on the path its action took."""
    strategy, model, _ = meta_space.decode_arrays(result.meta_action)
    d = result.decision
    path = strategy * 2 + (window.inputs.directions[d, model] > 0)
    return window.inputs.exit_ts[d, path].astype("datetime64[ns]")


def equity_curve(label: str, result: SimulationResult, window: WindowData) -> EquityCurve:
    """A policy's equity over the window: the starting account, then each close."""
    start = np.datetime64(window.start or window.inputs.ts[0], "ns")
    return EquityCurve(
        label,
        np.r_[np.asarray([start]), _close_times(result, window)],
        np.r_[window.inputs.start.equity, result.equity],
        np.r_[False, result.liquidated],
    )


def buy_and_hold(window: WindowData) -> list[EquityCurve]:
    """Each traded symbol held from the window's start to its end, from the same equity."""
    bars, tr = window.bars, window.transitions
    traded = set(np.asarray(tr.symbol[window.inputs.rows]).tolist())
    start = np.datetime64(window.start or window.inputs.ts[0], "ns")
    end = np.datetime64(window.end, "ns") if window.end is not None else None
    equity = float(window.inputs.start.equity)
    curves = []
    for code, symbol in enumerate(bars.symbols):
        if str(symbol) not in traded:
            continue
        lo, hi = int(bars.symbol_first[code]), int(bars.symbol_last[code]) + 1
        ts = bars.ts[lo:hi].astype("datetime64[ns]")
        keep = (ts >= start) & (ts < end) if end is not None else ts >= start
        if np.count_nonzero(keep) < 2:
            continue
        close = bars.close[lo:hi][keep]
        curves.append(
            EquityCurve(
                f"buy & hold {symbol}", ts[keep], equity * close / close[0], np.zeros(0, bool)
            )
        )
    return curves


def holdout_table(runs: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """The holdout comparison as one table: a row per metric, a column per policy."""
    metrics = list(next(iter(runs.values())))
    frame = pd.DataFrame({"metric": metrics})
    for name, values in runs.items():
        frame[name] = [float(values.get(m, np.nan)) for m in metrics]
    return frame


def gate_runs(
    agent: str,
    window: WindowData,
    config: TrainConfig,
    candidate_q: NDArray[np.float64],
    champion_q: NDArray[np.float64] | None,
    partner_q: NDArray[np.float64] | None,
) -> tuple[SimulationResult, SimulationResult]:
    """The two holdout runs the gate compares (as ``rlv2.pipeline.promotion_gate``): the
    candidate and the champion (None: the logged behaviour), the other agent on
    ``partner_q`` (None: logged) in both."""
    meta = agent_spec(agent).agent is Agent.META_STRATEGY

    def run(q: NDArray[np.float64] | None) -> SimulationResult:
        meta_q, sizing_q = (q, partner_q) if meta else (partner_q, q)
        return evaluate_policies(
            window.inputs, config.replay, meta_q, sizing_q, config.features.winrate_window
        )

    return run(candidate_q), run(champion_q)


def gate_evidence(
    agent: str,
    runs: tuple[SimulationResult, SimulationResult],
    config: TrainConfig,
    decision: Mapping[str, Any],
    groups: NDArray[np.int64] | None = None,
) -> GateEvidence:
    """What the gate's chart shows: the per-trade differences, their bootstrap and both
    runs' metrics, for the decision the gate made on ``runs`` (``groups``: each
    decision's symbol code, ``WindowData.decision_symbols``)."""
    candidate, champion = runs
    metric = agent_spec(agent).reward_metric if config.metric == "reward" else config.metric
    diff = paired_differences(candidate, champion, metric)
    trade_groups = paired_groups(candidate, champion, groups)
    means = (
        bootstrap_means(diff, config.n_boot, config.replay.seed, config.bootstrap, trade_groups)
        if diff.size
        else diff
    )
    n_meta, n_sizing = config.replay.meta_space.n_states, config.replay.sizing_space.n_states
    return GateEvidence(
        diff,
        means,
        decision,
        policy_metrics(candidate, n_meta, n_sizing),
        policy_metrics(champion, n_meta, n_sizing),
    )


def training_figures(
    trained: Mapping[str, AgentTraining],
    train: WindowData,
    holdout: WindowData,
    config: TrainConfig,
    production: Mapping[str, NDArray[np.float64] | None],
) -> dict[str, Figure]:
    """Every figure of a training run, by artifact name (``figures/<name>.png``).

    ``production`` holds each agent's production Q-table (None: none, or other bins); the
    holdout chart shows production's policy when either agent has one (the other logged).
    """
    out: dict[str, Figure] = {
        "learning": figures.learning(
            {str(a): t.epochs for a, t in trained.items()}, config.learner
        ),
    }
    candidate_q = {str(a): t.q for a, t in trained.items()}
    candidate = evaluate_policies(
        holdout.inputs,
        config.replay,
        candidate_q[Agent.META_STRATEGY],
        candidate_q[Agent.POSITION_SIZING],
        config.features.winrate_window,
    )
    for agent, training in trained.items():
        spec = agent_spec(agent)
        space = config.replay.state_space(spec.agent)
        visits = training_visits(agent, train, config)
        if spec.agent is Agent.META_STRATEGY:
            out["policy_meta_strategy"] = figures.meta_policy_map(training.q, space, visits)
        else:
            out["policy_position_sizing"] = figures.sizing_policy_map(training.q, space, visits)
        out[f"q_values_{agent}"] = figures.q_values(spec.agent, training.q, space, visits)
        prod_q = production.get(str(agent))
        if prod_q is not None:
            states = (
                candidate.meta_state
                if spec.agent is Agent.META_STRATEGY
                else candidate.sizing_state
            )
            out[f"changes_{agent}"] = figures.policy_changes(
                spec.agent, training.q, prod_q, space, state_visits(states, space.n_states)
            )
    policies = [equity_curve("candidate (both greedy)", candidate, holdout)]
    prod_meta, prod_sizing = (
        production.get(Agent.META_STRATEGY),
        production.get(Agent.POSITION_SIZING),
    )
    if prod_meta is not None or prod_sizing is not None:
        run = evaluate_policies(
            holdout.inputs, config.replay, prod_meta, prod_sizing, config.features.winrate_window
        )
        policies.append(equity_curve("production", run, holdout))
    logged = evaluate_policies(
        holdout.inputs, config.replay, None, None, config.features.winrate_window
    )
    policies.append(equity_curve("logged behaviour", logged, holdout))
    window = f"{_day(holdout.start)} to {_day(holdout.end)}"
    out["holdout_equity"] = figures.holdout_equity(policies, buy_and_hold(holdout), window)
    return out


def _day(value: Any) -> str:
    return "the start" if value is None else str(np.datetime64(value, "D"))
