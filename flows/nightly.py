"""Nightly retraining: train both agents on the history, log to MLflow, gate candidates."""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from rlv2 import evidence, pipeline, tracking
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
from rlv2.flows.promote import gate_candidates
from rlv2.pipeline import AgentTraining, Split, TrainConfig, WindowData


@task(cache_policy=NO_CACHE)
def evaluate_holdout(
    trained: dict[str, AgentTraining], holdout: WindowData, config: TrainConfig
) -> dict[str, dict[str, float]]:
    """Holdout metrics of the candidates (both greedy) and of the logged behaviour."""
    _, candidates = pipeline.evaluate(
        holdout, config, trained[Agent.META_STRATEGY].q, trained[Agent.POSITION_SIZING].q
    )
    _, logged = pipeline.evaluate(holdout, config, None, None)
    return {"holdout": candidates, "logged": logged}


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
) -> dict[str, Any]:
    """Log the run (params, curves, Q-tables, models, holdout metrics); register candidates.

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
        **tracking.provenance(db),
    }
    key = run_key("log_training")
    tags = {"flow": "nightly-retrain"}
    with tracking.start_run(run_name, params=params, tags=tags, key=key) as run:
        tracking.log_config(config.to_dict())
        versions = {}
        for agent, result in trained.items():
            space = config.replay.state_space(agent)
            tracking.log_curves(agent, **result.curves(pipeline.CURVE_POINTS))
            tracking.log_metrics({f"{agent}.{k}": v for k, v in result.summary().items()})
            tracking.log_q_table(agent, result.q, space)
            version = tracking.log_policy_model(
                agent, result.q, space, tags={"learner": config.learner}
            )
            versions[str(agent)] = None if version is None else str(version.version)
        tracking.log_metrics({f"holdout.{k}": v for k, v in evaluation["holdout"].items()})
        tracking.log_metrics({f"holdout_logged.{k}": v for k, v in evaluation["logged"].items()})
        run_id = run.info.run_id
    mean_pnl = evaluation["holdout"]["mean_pnl_pct"]
    print(f"MLflow run {run_id}: candidates {versions}; holdout mean pnl {mean_pnl:.4f}")
    return {"run_id": run_id, "versions": versions}


@flow(name="nightly-retrain", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=2))
def nightly_retrain(
    db: str = DEFAULT_DB,
    config: TrainConfig = DEFAULT_CONFIG,
    warm_start: bool = False,
    promote: bool = True,
) -> dict[str, Any]:
    """Train both agents on all but the final holdout, log them, and gate the candidates.

    ``config`` is the whole training configuration (``rlv2.pipeline.TrainConfig``; as a
    deployment parameter, the JSON form of a run's ``config.json``, any part of it:
    ``{"epochs": 5, "replay": {"alpha": 0.05}}``). ``warm_start`` starts from the
    production Q-tables; ``promote`` runs the promotion gate on the candidates.
    """
    path = db_path(db)
    tracking.configure()
    split = plan_split(path, config.holdout_fraction)
    print(f"training {split.train_start} .. {split.holdout_start}, holdout .. {split.holdout_end}")
    train_f = load_window.submit(path, split.train_start, split.holdout_start, config)
    holdout_f = load_window.submit(path, split.holdout_start, split.holdout_end, config)
    warm = {a: load_production(a, config)[1] if warm_start else None for a in Agent}
    train, holdout = train_f.result(), holdout_f.result()
    evidence.check_windows(train, holdout, config)  # nothing registered on too little data
    futures = {a: train_agent.submit(a, train, config, warm[a]) for a in Agent}
    trained = {a: f.result() for a, f in futures.items()}
    evidence.check_trained(trained.values(), config)
    evaluation = evaluate_holdout(trained, holdout, config)
    logged = log_training(
        "nightly-retrain", trained, evaluation, train, holdout, split, config, path
    )
    result: dict[str, Any] = {**logged, **evaluation, "split": split._asdict()}
    if promote:
        candidates = {
            a: (logged["versions"][a], trained[a].q) for a in Agent if logged["versions"][a]
        }
        result["decisions"] = gate_candidates(candidates, holdout, config)
    return result
