"""Tasks shared by the flows: thin wrappers over rlv2, retries only where there is I/O."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from rlv2 import history, pipeline, store, tracking
from rlv2.pipeline import AgentTraining, Split, TrainConfig

DEFAULT_DB = "rlv2.duckdb"
"""The DuckDB file flows read when none is given (the demo's)."""


def make_task_runner(name: str, address: str | None = None) -> Any:
    """The task runner a flow uses: ``threads`` (default), ``dask`` or ``ray``.

    ``dask`` and ``ray`` need the ``rlv2[dask]`` / ``rlv2[ray]`` extras; ``address``
    points at an existing cluster (else a local one is started).
    """
    if name == "threads":
        return ThreadPoolTaskRunner(max_workers=2)
    if name == "dask":
        from prefect_dask import DaskTaskRunner  # type: ignore[import-not-found]

        return DaskTaskRunner(address=address) if address else DaskTaskRunner()
    if name == "ray":
        from prefect_ray import RayTaskRunner  # type: ignore[import-not-found]

        return RayTaskRunner(address=address) if address else RayTaskRunner()
    raise ValueError(f"task_runner={name!r}: expected threads, dask or ray")


@task(retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def plan_split(db: str, holdout_fraction: float) -> Split:
    """Split the history's decisions into a training window and a later holdout."""
    with store.connect(db, read_only=True) as con:
        first, last, n = history.decision_bounds(con)
        if n < 2:
            raise ValueError(f"{db}: {n} decision points in table signals: nothing to train on")
        cut = history.holdout_start(con, holdout_fraction)
    return pipeline.walk_forward_split(first, last, cut)


@task(retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def load_window(
    db: str, start: datetime | None, end: datetime | None, config: TrainConfig
) -> pipeline.WindowData:
    """Load one window's transitions and counterfactual paths from DuckDB."""
    with store.connect(db, read_only=True) as con:
        window = pipeline.load_window(con, start, end, config.features)
    if window.n_incomplete:
        get_run_logger().warning(
            "%d of %d traded decisions in %s..%s lack a signal from some model: the "
            "simulated replay (explore training, the promotion gate) leaves them out",
            window.n_incomplete,
            window.n_incomplete + window.n_trades,
            start or "the start",
            end or "the end",
        )
    return window


@task(cache_policy=NO_CACHE)
def train_agent(
    agent: str,
    window: pipeline.WindowData,
    config: TrainConfig,
    warm_start: np.ndarray | None = None,
) -> AgentTraining:
    """Train one agent's Q-table on the training window (compiled kernel)."""
    result = pipeline.train_agent(agent, window, config, warm_start)
    print(f"{agent}: {result.n_events} events x {config.epochs} epochs, {result.summary()}")
    return result


@task(retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def production_q(agent: str, config: TrainConfig) -> np.ndarray | None:
    """The Q-table under the alias ``production``, if its state space matches ours."""
    loaded = tracking.load_q_table(agent)
    if loaded is None:
        return None
    q, space = loaded
    if space != config.replay.state_space(agent):
        print(f"{agent}: production uses other state bins; not comparable, ignored")
        return None
    return q


def db_path(db: str) -> str:
    """Absolute path of a DuckDB file, with a clear error if it does not exist."""
    path = Path(db).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(
            f"DuckDB file {path} not found: run `rlv2 demo-data --db {db}` or `rlv2 ingest`"
        )
    return str(path)
