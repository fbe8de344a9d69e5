"""Nightly retraining: train both agents on the history, log to MLflow, gate candidates."""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from rlv2 import pipeline, tracking
from rlv2.flows.common import (
    DEFAULT_DB,
    db_path,
    load_window,
    plan_split,
    production_q,
    train_agent,
)
from rlv2.flows.promote import gate_candidates
from rlv2.history import WindowData
from rlv2.pipeline import AgentTraining, Split, TrainConfig
from rlv2.replay import AGENTS


@task(retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def log_training(
    run_name: str,
    trained: dict[str, AgentTraining],
    holdout: WindowData,
    train: WindowData,
    split: Split,
    config: TrainConfig,
    db: str,
) -> dict[str, Any]:
    """Log the run (params, curves, Q-tables, models, holdout metrics); register candidates."""
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
    with tracking.start_run(run_name, params=params, tags={"flow": "nightly-retrain"}) as run:
        tracking.log_config(config.to_dict())
        versions = {}
        for agent, result in trained.items():
            space = pipeline.space_of(agent, config.replay)
            tracking.log_curves(agent, **result.curves(pipeline.CURVE_POINTS))
            tracking.log_metrics({f"{agent}.{k}": v for k, v in result.summary().items()})
            tracking.log_q_table(agent, result.q, space)
            version = tracking.log_policy_model(agent, result.q, space)
            versions[agent] = None if version is None else str(version.version)
        _, cand = pipeline.evaluate(
            holdout, config, trained["meta_strategy"].q, trained["position_sizing"].q
        )
        _, logged = pipeline.evaluate(holdout, config, None, None)
        tracking.log_metrics({f"holdout.{k}": v for k, v in cand.items()})
        tracking.log_metrics({f"holdout_logged.{k}": v for k, v in logged.items()})
        run_id = run.info.run_id
    print(
        f"MLflow run {run_id}: candidates {versions}; holdout mean pnl {cand['mean_pnl_pct']:.4f}"
    )
    return {"run_id": run_id, "versions": versions, "holdout": cand, "logged": logged}


@flow(name="nightly-retrain", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=2))
def nightly_retrain(
    db: str = DEFAULT_DB,
    mode: str = "explore",
    epochs: int = 20,
    alpha: float = 0.01,
    gamma: float = 0.99,
    epsilon: float = 0.1,
    epsilon_decay: float = 0.995,
    epsilon_min: float = 0.01,
    seed: int = 0,
    holdout_fraction: float = 0.2,
    warm_start: bool = False,
    promote: bool = True,
    metric: str = "reward",
    margin: float = 0.0,
) -> dict[str, Any]:
    """Train both agents on all but the final holdout, log them, and gate the candidates."""
    config = TrainConfig(
        mode=mode,
        epochs=epochs,
        holdout_fraction=holdout_fraction,
        metric=metric,
        margin=margin,
    ).with_hyperparameters(
        alpha=alpha,
        gamma=gamma,
        epsilon=epsilon,
        epsilon_decay=epsilon_decay,
        epsilon_min=epsilon_min,
        seed=seed,
    )
    path = db_path(db)
    tracking.configure()
    split = plan_split(path, holdout_fraction)
    print(f"training {split.train_start} .. {split.holdout_start}, holdout .. {split.holdout_end}")
    train_f = load_window.submit(path, split.train_start, split.holdout_start, config)
    holdout_f = load_window.submit(path, split.holdout_start, split.holdout_end, config)
    warm = {a: production_q(a, config) if warm_start else None for a in AGENTS}
    train = train_f.result()
    futures = {a: train_agent.submit(a, train, config, warm[a]) for a in AGENTS}
    trained = {a: f.result() for a, f in futures.items()}
    holdout = holdout_f.result()
    logged = log_training("nightly-retrain", trained, holdout, train, split, config, path)
    result: dict[str, Any] = {**logged, "split": split._asdict()}
    if promote:
        candidates = {
            a: (logged["versions"][a], trained[a].q) for a in AGENTS if logged["versions"][a]
        }
        result["decisions"] = gate_candidates(candidates, holdout, config)
    return result
