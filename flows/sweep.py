"""Hyperparameter sweeps: an Optuna study per agent, one nested MLflow run per configuration.

The search (grid, random or TPE; resumption) is ``rlv2.sweeps``. This flow evaluates
what the study proposes: configurations that share reward weights share their kernel
inputs, so their kernel hyperparameters (α, γ, the ε schedule, the seed) train together
in one ``replay_sweep`` pass. Configurations are scored on a validation window cut from
the end of the training window (the holdout stays untouched for the promotion gate),
each agent greedy against the logged behaviour of the other, on the agent's own reward.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from rlv2 import figures, pipeline, sufficiency, sweeps, tracking
from rlv2.console import progress, when
from rlv2.domain import Agent, agent_spec
from rlv2.flows.common import (
    DEFAULT_CONFIG,
    DEFAULT_DB,
    IO_RETRIES,
    db_path,
    load_window,
    make_task_runner,
    plan_split,
    plan_validation,
    run_key,
    train_agent,
)
from rlv2.flows.explain import flow_run_tags, publish_sweep_table
from rlv2.pipeline import AgentTraining, TrainConfig, TrainingWindows, WindowData
from rlv2.sweeps import Proposal, SweepConfig

DEFAULT_SWEEP = SweepConfig()
"""The sweep of a flow given none: every default of ``SweepConfig``."""


@task(cache_policy=NO_CACHE)
def train_group(agent: str, window: WindowData, configs: list[TrainConfig]) -> list[AgentTraining]:
    """Train configurations that share their reward weights in one ``replay_sweep`` pass."""
    hypers = [{k: getattr(c.replay, k) for k in (*sweeps.KERNEL_KEYS, "seed")} for c in configs]
    return pipeline.train_agent_sweep(agent, window, configs[0], hypers)


@task(cache_policy=NO_CACHE)
def score(agent: str, q: np.ndarray, window: WindowData, config: TrainConfig) -> dict[str, float]:
    """Validation metrics of one agent's greedy Q-table, the other agent logged."""
    spec = agent_spec(agent)
    meta_q, sizing_q = (q, None) if spec.agent is Agent.META_STRATEGY else (None, q)
    _, metrics = pipeline.evaluate(window, config, meta_q, sizing_q)
    reward = metrics[spec.mean_reward_metric]
    return {"score": reward, **metrics}


def batch_name() -> str:
    """A batch's subflow run name: ``sweep-position_sizing-4-configurations``."""
    params = flow_run.get_parameters()
    return f"sweep-{params.get('agent', '')}-{len(params.get('configs', []))}-configurations"


@flow(name="sweep-configurations", flow_run_name=batch_name, log_prints=True)
def sweep_configurations(
    agent: str, configs: list[TrainConfig], fit: WindowData, val: WindowData
) -> list[tuple[AgentTraining, dict[str, float]]]:
    """Train and score a batch of configurations on the flow's task runner."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, c in enumerate(configs):
        groups.setdefault(sweeps.group_key(c), []).append(i)
    futures = {
        key: train_group.submit(agent, fit, [configs[i] for i in idx])
        for key, idx in groups.items()
    }
    trained: dict[int, AgentTraining] = {}
    for key, idx in groups.items():
        trained.update(zip(idx, futures[key].result(), strict=True))
    scores = [score.submit(agent, trained[i].q, val, configs[i]) for i in range(len(configs))]
    return [(trained[i], scores[i].result()) for i in range(len(configs))]


@task(cache_policy=NO_CACHE, **IO_RETRIES)
def log_sweep(
    agent: str,
    results: list[dict[str, Any]],
    sweep: SweepConfig,
    db: str,
    best_final: AgentTraining | None,
    best_config: TrainConfig,
    windows: TrainingWindows,
    periods: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Parent MLflow run, one nested child per configuration, the results table, the best,
    the figures (scores against hyperparameters, learning curves).

    The parent run and the best's registered version carry ``windows`` as tags: the best
    is trained on the whole training window, and the holdout after it stays untouched for
    the promotion gate. Idempotent within a flow run: a retry resumes the runs its first
    try began.
    """
    rows = []
    params = {
        "agent": agent,
        "method": sweep.method,
        "study": sweep.study or "",
        "n_configs": len(results),
        **(periods or {}),
        **tracking.provenance(db),
    }
    key = run_key("log_sweep", agent)
    learner = results[0]["config"].learner if results else ""
    tags = flow_run_tags(flow="sweep", agents=agent, learner=learner, **windows.tags())
    with tracking.start_run(f"sweep-{agent}", params=params, tags=tags, key=key) as parent:
        for r in results:
            proposal: Proposal = r["proposal"]
            i = proposal.config_index
            child_params = {**r["config"].to_dict(), "config_index": i, "trial": proposal.trial}
            child_key = None if key is None else f"{key}/{proposal.trial}"
            with tracking.start_run(
                f"{agent}-{i}",
                params=child_params,
                tags={"agents": agent, "learner": r["config"].learner},
                nested=True,
                key=child_key,
            ) as child:
                tracking.log_curves(agent, **r["training"].curves(pipeline.CURVE_POINTS))
                tracking.log_metrics({f"validation.{k}": v for k, v in r["metrics"].items()})
                rows.append(
                    {
                        "config_index": i,
                        "trial": proposal.trial,
                        "run_id": child.info.run_id,
                        "seed": proposal.seed,
                        **proposal.params,
                        **r["metrics"],
                    }
                )
        table = pd.DataFrame(rows).sort_values("score", ascending=False, kind="stable")
        tracking.log_table(table, "sweep_results.csv")
        best = table.iloc[0].to_dict()
        tracking.log_metrics({"best.score": float(best["score"])})
        hyper = [k for k in results[0]["proposal"].params if k in table.columns]
        tracking.log_figure(
            figures.sweep_scores(
                agent,
                {k: table[k].tolist() for k in hyper},
                table["score"].tolist(),
                0,
                f"validation score: mean {agent_spec(agent).reward_metric.replace('_', ' ')} "
                "per trade",
            ),
            "sweep_scores",
        )
        labels = {r["proposal"].config_index: _label(r["proposal"].params, hyper) for r in results}
        tracking.log_figure(
            figures.sweep_learning(
                agent,
                {labels[r["proposal"].config_index]: r["training"].epochs for r in results},
                labels[int(best["config_index"])],
            ),
            "sweep_learning",
        )
        version = None
        if best_final is not None:
            space = best_config.replay.state_space(agent)
            tracking.log_config(best_config.to_dict())
            tracking.log_q_table(agent, best_final.q, space)
            registered = tracking.log_policy_model(
                agent,
                best_final.q,
                space,
                tags={"learner": best_config.learner, **windows.tags()},
                coverage=best_final.coverage,
            )
            version = None if registered is None else str(registered.version)
        run_id = parent.info.run_id
    print(
        f"{agent}: best configuration {int(best['config_index'])} score {best['score']:.4f}; "
        f"registered version {version}"
    )
    print(table.head(10).to_string(index=False))
    return {"run_id": run_id, "best": best, "version": version, "table": table}


def _label(params: dict[str, Any], names: list[str]) -> str:
    """A configuration's legend label: the values of the hyperparameters that vary."""
    return ", ".join(f"{k}={v}" for k, v in params.items() if k in names) or "default"


def run_search(
    agent: str,
    sweep: SweepConfig,
    base: TrainConfig,
    fit: WindowData,
    val: WindowData,
    runner: Any,
) -> list[dict[str, Any]]:
    """Run the agent's study: each batch of proposals trained and scored on ``runner``."""
    space = sweeps.search_space(sweep, base)
    study = sweeps.open_study(sweep, space, agent, base.replay.seed)
    done_before = len(study.trials)
    results: list[dict[str, Any]] = []

    def evaluate(batch: list[Proposal]) -> list[float]:
        configs = [sweeps.train_config(base, p.params, p.seed) for p in batch]
        evaluated = sweep_configurations.with_options(task_runner=runner)(agent, configs, fit, val)
        for proposal, config, (training, metrics) in zip(batch, configs, evaluated, strict=True):
            results.append(
                {"proposal": proposal, "config": config, "training": training, "metrics": metrics}
            )
        progress(f"sweep {agent}: {len(results)} configurations scored")
        return [metrics["score"] for _, metrics in evaluated]

    sweeps.run_study(study, space, sweep.method, sweep.trials, base.replay.seed, evaluate)
    print(
        f"{agent}: study {study.study_name} had {done_before} trials before this run, "
        f"{len(results)} in it"
    )
    return sorted(results, key=lambda r: r["proposal"].config_index)


def run_name() -> str:
    """The sweep flow run's name: ``sweep-both-grid-2026-11-30``."""
    params = flow_run.get_parameters()
    search = params.get("search")
    method = search.get("method") if isinstance(search, dict) else getattr(search, "method", "")
    return f"sweep-{params.get('agent', 'both')}-{method or 'grid'}-{datetime.now(UTC):%Y-%m-%d}"


@flow(name="sweep", flow_run_name=run_name, log_prints=True)
def sweep(
    db: str = DEFAULT_DB,
    config: TrainConfig = DEFAULT_CONFIG,
    search: SweepConfig = DEFAULT_SWEEP,
    agent: str = "both",
    task_runner: str = "threads",
    register_best: bool = True,
) -> dict[str, Any]:
    """Sweep hyperparameters and reward weights; register each agent's best.

    ``config`` is the base training configuration (``rlv2.pipeline.TrainConfig``);
    ``search`` the method, budget, study and values to try
    (``rlv2.sweeps.SweepConfig``). ``task_runner``: ``threads``, ``dask`` or ``ray``.
    """
    path = db_path(db)
    tracking.configure()
    split = plan_split(path, config.holdout_fraction)
    val_start = plan_validation(path, search.validation_fraction, split.holdout_start)
    fit = load_window(path, split.train_start, val_start, config)
    val = load_window(path, val_start, split.holdout_start, config)
    train_all = load_window(path, split.train_start, split.holdout_start, config)
    print(
        f"fit {when(split.train_start)} .. {when(val_start)} ({fit.n_trades} trades), "
        f"validation .. {when(split.holdout_start)} ({val.n_trades}); holdout untouched"
    )
    agents = list(Agent) if agent == "both" else [agent_spec(agent).agent]
    runner = make_task_runner(task_runner)
    out: dict[str, Any] = {}
    for name in agents:
        results = run_search(name, search, config, fit, val, runner)
        if not results:
            print(f"{name}: the study has tried every configuration; nothing to log")
            out[name] = {"run_id": None, "best": None, "version": None, "table": pd.DataFrame()}
            continue
        best = results[int(np.argmax([r["metrics"]["score"] for r in results]))]
        best_final = train_agent(name, train_all, best["config"]) if register_best else None
        periods = {
            "train_start": split.train_start,
            "validation_start": val_start,
            "holdout_start": split.holdout_start,
            "train_trades": fit.n_trades,
            "validation_trades": val.n_trades,
        }
        windows = TrainingWindows.of_split(split)
        if best_final is not None:
            sufficiency.check_trained([best_final], best["config"])
        out[name] = log_sweep(
            name, results, search, path, best_final, best["config"], windows, periods
        )
        publish_sweep_table(name, out[name]["table"])
    return out
