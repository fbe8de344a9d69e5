"""Hyperparameter sweeps: grid, random and Optuna TPE, one nested MLflow run per configuration.

Configurations that share reward weights and state bins share their kernel inputs, so
their kernel hyperparameters (α, γ, the ε schedule, the seed) train together in one
``replay_sweep`` pass. Configurations are scored on a validation window cut from the
end of the training window (the holdout stays untouched for the promotion gate), each
agent greedy against the logged behaviour of the other, on the agent's own reward.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import numpy as np
import optuna
import pandas as pd
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from rlv2 import history, pipeline, store, tracking
from rlv2.flows.common import (
    DEFAULT_DB,
    db_path,
    load_window,
    make_task_runner,
    plan_split,
    train_agent,
)
from rlv2.history import WindowData
from rlv2.pipeline import AgentTraining, TrainConfig
from rlv2.qlearning import stream_seed
from rlv2.replay import AGENTS
from rlv2.rewards import MetaRewardWeights, SizingRewardWeights
from rlv2.states import meta_state_space, sizing_state_space

KERNEL_KEYS = ("alpha", "gamma", "epsilon", "epsilon_decay", "epsilon_min")
METHODS = ("grid", "random", "tpe")


def grid_configs(space: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the listed values."""
    keys = list(space)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*space.values())]


def random_configs(space: dict[str, list[Any]], n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` draws: numeric keys log-uniform (α) or uniform between the listed extremes,
    the others (weights, bins) uniformly among the listed choices."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        config: dict[str, Any] = {}
        for key, values in space.items():
            lo, hi = (min(values), max(values)) if key in KERNEL_KEYS else (None, None)
            if key == "alpha" and lo is not None and lo < hi:
                config[key] = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
            elif key in KERNEL_KEYS and lo is not None and lo < hi:
                config[key] = float(rng.uniform(lo, hi))
            else:
                config[key] = values[int(rng.integers(len(values)))]
        if config["epsilon_min"] > config["epsilon"]:
            config["epsilon_min"] = config["epsilon"]
        out.append(config)
    return out


def apply_config(base: TrainConfig, config: dict[str, Any]) -> TrainConfig:
    """The ``TrainConfig`` of one sweep configuration."""
    meta_w = config.get("meta_weights")
    sizing_w = config.get("sizing_weights")
    bins = config.get("bins") or {}
    changes: dict[str, Any] = {k: config[k] for k in (*KERNEL_KEYS, "seed") if k in config}
    if meta_w is not None:
        changes["meta_weights"] = MetaRewardWeights(*meta_w)
    if sizing_w is not None:
        changes["sizing_weights"] = SizingRewardWeights(*sizing_w)
    if bins:
        changes["meta_space"] = meta_state_space(bins.get("meta"))
        changes["sizing_space"] = sizing_state_space(bins.get("sizing"))
    return replace(base, replay=replace(base.replay, **changes))


def _group_key(config: dict[str, Any]) -> str:
    return repr((config.get("meta_weights"), config.get("sizing_weights"), config.get("bins")))


@task(cache_policy=NO_CACHE)
def train_group(
    agent: str, window: WindowData, base: TrainConfig, configs: list[dict[str, Any]]
) -> list[AgentTraining]:
    """Train configurations sharing weights and bins in one ``replay_sweep`` pass."""
    config = apply_config(base, configs[0])
    hypers = [{k: c[k] for k in (*KERNEL_KEYS, "seed")} for c in configs]
    return pipeline.train_agent_sweep(agent, window, config, hypers)


@task(cache_policy=NO_CACHE)
def score(agent: str, q: np.ndarray, window: WindowData, config: TrainConfig) -> dict[str, float]:
    """Validation metrics of one agent's greedy Q-table, the other agent logged."""
    meta_q, sizing_q = (q, None) if agent == "meta_strategy" else (None, q)
    _, metrics = pipeline.evaluate(window, config, meta_q, sizing_q)
    reward = metrics["meta_mean_reward" if agent == "meta_strategy" else "sizing_mean_reward"]
    return {"score": reward, **metrics}


@flow(name="sweep-configurations", log_prints=True)
def sweep_configurations(
    agent: str, configs: list[dict[str, Any]], fit: WindowData, val: WindowData, base: TrainConfig
) -> list[dict[str, Any]]:
    """Train and score a batch of configurations on the flow's task runner."""
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(configs):
        groups.setdefault(_group_key(c), []).append(i)
    trained: dict[int, AgentTraining] = {}
    futures = {
        key: train_group.submit(agent, fit, base, [configs[i] for i in idx])
        for key, idx in groups.items()
    }
    for key, idx in groups.items():
        for i, result in zip(idx, futures[key].result(), strict=True):
            trained[i] = result
    scores = [
        score.submit(agent, trained[i].q, val, apply_config(base, configs[i]))
        for i in range(len(configs))
    ]
    return [
        {"config": configs[i], "training": trained[i], "metrics": scores[i].result()}
        for i in range(len(configs))
    ]


def _tpe(
    agent: str,
    space: dict[str, list[Any]],
    n_trials: int,
    study_name: str,
    storage: str,
    seed: int,
    fit: WindowData,
    val: WindowData,
    base: TrainConfig,
) -> list[dict[str, Any]]:
    study = optuna.create_study(
        study_name=f"{study_name}-{agent}",
        storage=storage,
        direction="maximize",
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=seed),
    )
    done_before = len(study.trials)
    results: list[dict[str, Any]] = []

    def objective(trial: optuna.Trial) -> float:
        config: dict[str, Any] = {}
        for key, values in space.items():
            if key == "alpha" and min(values) < max(values):
                config[key] = trial.suggest_float(key, min(values), max(values), log=True)
            elif key in KERNEL_KEYS and min(values) < max(values):
                config[key] = trial.suggest_float(key, min(values), max(values))
            else:
                pick = trial.suggest_categorical(key, list(range(len(values))))
                config[key] = values[int(pick)]
        config["epsilon_min"] = min(config["epsilon_min"], config["epsilon"])
        config["seed"] = stream_seed(seed, trial.number)
        cfg = apply_config(base, config)
        training = train_agent.fn(agent, fit, cfg)
        metrics = score.fn(agent, training.q, val, cfg)
        results.append({"config": config, "training": training, "metrics": metrics})
        return metrics["score"]

    study.optimize(objective, n_trials=n_trials, show_progress_bar=True)
    print(
        f"{agent}: study {study.study_name} had {done_before} trials before this run; "
        f"best {study.best_value:.4f}"
    )
    return results


@task(retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def log_sweep(
    agent: str,
    results: list[dict[str, Any]],
    base: TrainConfig,
    db: str,
    method: str,
    register_best: bool,
    best_final: AgentTraining | None,
    best_config: TrainConfig,
) -> dict[str, Any]:
    """Parent MLflow run, one nested child per configuration, the results table, the best."""
    rows = []
    params = {
        "agent": agent,
        "method": method,
        "n_configs": len(results),
        **tracking.provenance(db),
    }
    with tracking.start_run(f"sweep-{agent}", params=params, tags={"flow": "sweep"}) as parent:
        for i, r in enumerate(results):
            cfg = apply_config(base, r["config"])
            child_params = {**cfg.to_dict(), "config_index": i}
            with tracking.start_run(f"{agent}-{i}", params=child_params, nested=True) as child:
                tracking.log_curves(agent, **r["training"].curves(pipeline.CURVE_POINTS))
                tracking.log_metrics({f"validation.{k}": v for k, v in r["metrics"].items()})
                rows.append(
                    {
                        "config_index": i,
                        "run_id": child.info.run_id,
                        **_flat(r["config"]),
                        **r["metrics"],
                    }
                )
        table = pd.DataFrame(rows).sort_values("score", ascending=False)
        tracking.log_table(table, "sweep_results.csv")
        best = table.iloc[0].to_dict()
        tracking.log_metrics({"best.score": float(best["score"])})
        version = None
        if register_best and best_final is not None:
            space = pipeline.space_of(agent, best_config.replay)
            tracking.log_config(best_config.to_dict())
            tracking.log_q_table(agent, best_final.q, space)
            registered = tracking.log_policy_model(agent, best_final.q, space)
            version = None if registered is None else str(registered.version)
        run_id = parent.info.run_id
    print(
        f"{agent}: best configuration {int(best['config_index'])} score {best['score']:.4f}; "
        f"registered version {version}"
    )
    print(table.head(10).to_string(index=False))
    return {"run_id": run_id, "best": best, "version": version, "table": table}


def _flat(config: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, int | float | str) else repr(v)) for k, v in config.items()}


@flow(name="sweep", log_prints=True)
def sweep(
    db: str = DEFAULT_DB,
    agent: str = "both",
    method: str = "grid",
    alpha: list[float] | None = None,
    gamma: list[float] | None = None,
    epsilon: list[float] | None = None,
    epsilon_decay: list[float] | None = None,
    epsilon_min: list[float] | None = None,
    meta_weights: list[list[float]] | None = None,
    sizing_weights: list[list[float]] | None = None,
    bins: list[dict[str, Any]] | None = None,
    n_trials: int = 16,
    study_name: str = "rlv2-sweep",
    storage: str | None = None,
    epochs: int = 20,
    mode: str = "explore",
    seed: int = 0,
    holdout_fraction: float = 0.2,
    validation_fraction: float = 0.25,
    task_runner: str = "threads",
    register_best: bool = True,
) -> dict[str, Any]:
    """Sweep hyperparameters, reward weights and bins; register each agent's best."""
    if method not in METHODS:
        raise ValueError(f"method={method!r}: expected one of {METHODS}")
    space: dict[str, list[Any]] = {
        "alpha": alpha or [0.01, 0.05, 0.2],
        "gamma": gamma or [0.9, 0.99],
        "epsilon": epsilon or [0.1, 0.3],
        "epsilon_decay": epsilon_decay or [0.995],
        "epsilon_min": epsilon_min or [0.01],
        "meta_weights": meta_weights or [[0.5, 0.2, 0.15]],
        "sizing_weights": sizing_weights or [[0.4, 0.1]],
        "bins": bins or [{}],
    }
    base = TrainConfig(mode=mode, epochs=epochs, holdout_fraction=holdout_fraction)
    base = base.with_hyperparameters(seed=seed)
    path = db_path(db)
    tracking.configure()
    split = plan_split(path, holdout_fraction)
    with store.connect(path, read_only=True) as con:
        val_start = history.holdout_start(con, validation_fraction, split.holdout_start)
    fit = load_window(path, split.train_start, val_start, base)
    val = load_window(path, val_start, split.holdout_start, base)
    train_all = load_window(path, split.train_start, split.holdout_start, base)
    print(
        f"fit {split.train_start}..{val_start} ({fit.n_trades} trades), "
        f"validation ..{split.holdout_start} ({val.n_trades}); holdout untouched"
    )
    agents = list(AGENTS) if agent == "both" else [agent]
    runner = make_task_runner(task_runner)
    out: dict[str, Any] = {}
    for name in agents:
        if method == "tpe":
            store_uri = storage or "sqlite:///optuna.db"
            results = _tpe(name, space, n_trials, study_name, store_uri, seed, fit, val, base)
        else:
            configs = (
                grid_configs(space) if method == "grid" else random_configs(space, n_trials, seed)
            )
            for i, c in enumerate(configs):
                c["seed"] = stream_seed(seed, i)
            results = sweep_configurations.with_options(task_runner=runner)(
                name, configs, fit, val, base
            )
        best_index = int(np.argmax([r["metrics"]["score"] for r in results]))
        best_config = apply_config(base, results[best_index]["config"])
        best_final = train_agent(name, train_all, best_config) if register_best else None
        out[name] = log_sweep(
            name, results, base, path, method, register_best, best_final, best_config
        )
    return out
