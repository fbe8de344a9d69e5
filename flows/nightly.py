"""Nightly retraining: train both agents on the history, log to MLflow, gate candidates."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, State
from prefect.task_runners import ThreadPoolTaskRunner

from rlv2 import evidence, faults, off_policy, pipeline, sufficiency, tracking
from rlv2.console import progress, versions_text, when
from rlv2.domain import Agent
from rlv2.flows.common import (
    DEFAULT_CONFIG,
    DEFAULT_DB,
    IO_RETRIES,
    db_path,
    load_production,
    load_window,
    plan_split,
    run_key,
    train_agent,
)
from rlv2.flows.explain import (
    REFUSED_STATE,
    draw_training_figures,
    flow_run_tags,
    log_report,
)
from rlv2.flows.promote import Candidate, gate_candidates
from rlv2.pipeline import AgentTraining, Split, TrainConfig, TrainingWindows, WindowData

HOLDOUT_METRICS = (
    "mean_pnl_pct",
    "sharpe",
    "max_drawdown_pct",
    "win_rate",
    "meta_mean_reward",
    "sizing_mean_reward",
)
"""The candidates' holdout figures logged as metrics, the ones a person compares across
runs; every figure of every policy is in the run's table ``holdout_comparison.csv``."""


def run_name() -> str:
    """The nightly flow run's name: what it did and when (``nightly-retrain-2026-11-30``)."""
    return f"nightly-retrain-{datetime.now(UTC):%Y-%m-%d}"


@task(cache_policy=NO_CACHE)
def evaluate_holdout(
    trained: dict[str, AgentTraining],
    holdout: WindowData,
    config: TrainConfig,
    production: dict[str, np.ndarray | None] | None = None,
) -> dict[str, dict[str, float]]:
    """Holdout metrics of the candidates (both greedy), of production's tables (when either
    agent has one; the other logged) and of the logged behaviour."""
    _, candidates = pipeline.evaluate(
        holdout, config, trained[Agent.META_STRATEGY].q, trained[Agent.POSITION_SIZING].q
    )
    _, logged = pipeline.evaluate(holdout, config, None, None)
    out = {"holdout": candidates, "logged": logged}
    prod = production or {}
    meta_q, sizing_q = prod.get(Agent.META_STRATEGY), prod.get(Agent.POSITION_SIZING)
    if meta_q is not None or sizing_q is not None:
        out["production"] = pipeline.evaluate(holdout, config, meta_q, sizing_q)[1]
    return out


@task(cache_policy=NO_CACHE)
def second_opinions(
    trained: dict[str, AgentTraining], holdout: WindowData, config: TrainConfig
) -> dict[str, dict[str, Any]]:
    """Each candidate's SNIPS estimate beside its simulated holdout value, where the
    holdout logged the agent's propensities (``rlv2.off_policy``; an alarm, not a gate)."""
    out = {}
    for agent, result in trained.items():
        opinion = off_policy.second_opinion(
            agent, result.q, holdout.inputs, holdout.transitions, config.replay
        )
        if opinion is None:
            continue
        e = opinion.estimate
        alarm = " DISAGREE (alarm, not a gate)" if opinion.disagrees else ""
        print(
            f"{agent}: holdout {opinion.figures()['ips.metric']} simulated "
            f"{opinion.simulated:.4f} vs SNIPS {e.value:.4f} ± {e.se:.4f} ({e.matched} of "
            f"{e.n} logged trades match){alarm}"
        )
        out[str(agent)] = opinion.figures()
    return out


@task(cache_policy=NO_CACHE, **IO_RETRIES)
def log_training(
    run_name: str,
    trained: dict[str, AgentTraining],
    evaluation: dict[str, dict[str, float]],
    train: WindowData,
    holdout: WindowData,
    split: Split,
    config: TrainConfig,
    db: str,
    opinions: dict[str, dict[str, Any]] | None = None,
    figures: dict[str, Figure] | None = None,
) -> dict[str, Any]:
    """Log the run (params, curves, Q-tables, models, the holdout table and headline
    metrics, figures); register candidates.

    The run and each version it registers carry the training and holdout windows as
    tags (``TrainingWindows``): ``rlv2 promote`` gates a version on its own holdout.
    ``opinions`` (``second_opinions``) become metrics ``ips.<agent>.<figure>`` and tags
    ``ips_disagrees.<agent>``.
    Idempotent within a flow run: a retry resumes the run its first try began.
    """
    params = {
        **config.to_dict(),
        "train_start": split.train_start,
        "holdout_start": split.holdout_start,
        "holdout_end": split.holdout_end,
        "train_trades": train.n_trades,
        "holdout_trades": holdout.n_trades,
        "train_trades_incomplete": train.n_incomplete,
        "holdout_trades_incomplete": holdout.n_incomplete,
        "account_equity": "recorded" if holdout.recorded_equity else "model",
        **tracking.provenance(db),
    }
    key = run_key("log_training")
    windows = TrainingWindows.of_split(split).tags()
    opinions = opinions or {}
    flags = {f"ips_disagrees.{a}": o["ips_disagrees"] for a, o in opinions.items()}
    tags = flow_run_tags(
        flow="nightly-retrain",
        agents=",".join(map(str, trained)),
        learner=config.learner,
        **windows,
        **flags,
    )
    with tracking.start_run(run_name, params=params, tags=tags, key=key) as run:
        tracking.log_config(config.to_dict())
        versions = {}
        for agent, result in trained.items():
            space = config.replay.state_space(agent)
            tracking.log_curves(agent, **result.curves(pipeline.CURVE_POINTS))
            tracking.log_metrics({f"{agent}.{k}": v for k, v in result.summary().items()})
            tracking.log_q_table(agent, result.q, space)
            faults.kill_point("logging")
            tracking.log_policy_model(
                agent, result.q, space, registered=False, coverage=result.coverage
            )
        comparison = evidence.holdout_table(_comparison(evaluation))
        tracking.log_table(comparison, "holdout_comparison.csv")
        tracking.log_metrics({f"holdout.{k}": evaluation["holdout"][k] for k in HOLDOUT_METRICS})
        tracking.log_metrics(
            {
                f"ips.{agent}.{k.removeprefix('ips.').removeprefix('ips_')}": float(v)
                for agent, figures in opinions.items()
                for k, v in figures.items()
                if isinstance(v, int | float)
            }
        )
        for name, figure in (figures or {}).items():
            tracking.log_figure(figure, name)
        # registered only once every artifact is written: a run whose artifacts failed
        # (a full disk) registers nothing
        for agent, result in trained.items():
            space = config.replay.state_space(agent)
            version = tracking.log_policy_model(
                agent,
                result.q,
                space,
                tags={"learner": config.learner, **windows},
                coverage=result.coverage,
            )
            versions[str(agent)] = None if version is None else str(version.version)
        run_id = run.info.run_id
    tracking.set_run_tags(run_id, {f"version.{a}": v for a, v in versions.items() if v})
    mean_pnl = evaluation["holdout"]["mean_pnl_pct"]
    print(
        f"MLflow run {run_id}: candidates {versions_text(versions)}; holdout mean pnl "
        f"{mean_pnl:.4f}"
    )
    return {"run_id": run_id, "versions": versions}


def _comparison(evaluation: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """The holdout runs by the column names of the comparison table."""
    names = {"holdout": "candidate", "production": "production", "logged": "logged"}
    return {names[k]: evaluation[k] for k in names if k in evaluation}


@flow(
    name="nightly-retrain",
    flow_run_name=run_name,
    log_prints=True,
    task_runner=ThreadPoolTaskRunner(max_workers=2),
)
def nightly_retrain(
    db: str = DEFAULT_DB,
    config: TrainConfig = DEFAULT_CONFIG,
    warm_start: bool = False,
    promote: bool = True,
    figures: bool = True,
) -> dict[str, Any] | State[Any]:
    """Train both agents on all but the final holdout, log them, and gate the candidates.

    ``config`` is the whole training configuration (``rlv2.pipeline.TrainConfig``; as a
    deployment parameter, the JSON form of a run's ``config.json``, any part of it:
    ``{"epochs": 5, "replay": {"alpha": 0.05}}``). ``warm_start`` starts from the
    production Q-tables; ``promote`` runs the promotion gate on the candidates;
    ``figures`` draws the run's figures and report. The run ends in the state
    ``Completed(name="Refused")`` when the gate refused a candidate.
    """
    path = db_path(db)
    tracking.configure()
    split = plan_split(path, config.holdout_fraction)
    print(
        f"training {when(split.train_start)} .. {when(split.holdout_start)}, holdout .. "
        f"{when(split.holdout_end)}"
    )
    progress("nightly: loading the history")
    train_f = load_window.submit(path, split.train_start, split.holdout_start, config)
    holdout_f = load_window.submit(path, split.holdout_start, split.holdout_end, config)
    production = {a: load_production(a, config)[1] for a in Agent}
    warm = {a: production[a] if warm_start else None for a in Agent}
    train, holdout = train_f.result(), holdout_f.result()
    sufficiency.check_windows(train, holdout, config)  # nothing registered on too little data
    futures = {a: train_agent.submit(a, train, config, warm[a]) for a in Agent}
    trained = {a: f.result() for a, f in futures.items()}
    sufficiency.check_trained(trained.values(), config)
    faults.kill_point("trained")
    progress("nightly: evaluating on the holdout")
    evaluation = evaluate_holdout(trained, holdout, config, production)
    opinions = second_opinions(trained, holdout, config)
    progress("nightly: drawing the figures")
    drawn = draw_training_figures(trained, train, holdout, config, production) if figures else {}
    progress("nightly: logging to MLflow, registering the candidates")
    logged = log_training(
        "nightly-retrain",
        trained,
        evaluation,
        train,
        holdout,
        split,
        config,
        path,
        opinions,
        drawn,
    )
    result: dict[str, Any] = {
        **logged,
        **evaluation,
        "ips": opinions,
        "split": split._asdict(),
    }
    if promote:
        candidates = {
            a: Candidate(logged["versions"][a], trained[a].q, holdout)
            for a in Agent
            if logged["versions"][a]
        }
        progress("nightly: the promotion gate")
        result["decisions"] = gate_candidates(candidates, config)
    if figures:
        result["report"] = log_report(logged["run_id"])
    names = pipeline.refused_agents(result.get("decisions", {}))
    if names:
        return Completed(name=REFUSED_STATE, message=f"refused: {', '.join(names)}", data=result)
    return result
