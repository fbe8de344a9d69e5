"""Tasks shared by the flows: thin wrappers over rlv2, retried only on I/O that can pass.

Retries. A task that reads DuckDB or MLflow is retried (twice, 2 s apart) when the
error is one a second try can cure (:func:`is_transient`: a network or OS error, a
DuckDB file locked by a writer, an MLflow store that answers "temporarily
unavailable"); a deterministic error (a ``ValueError`` such as "no decision points", a
missing file) fails at once. A task that writes to MLflow is retried only if it is
idempotent: it opens its run through ``tracking.start_run(key=...)`` with
:func:`run_key`, so a retry finds the run its first try left and completes it instead
of logging a second one. Computing tasks (training, evaluation) are not retried.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
from mlflow.exceptions import MlflowException
from prefect import Task, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.runtime import flow_run
from prefect.states import State
from prefect.task_runners import ThreadPoolTaskRunner

from rlv2 import history, pipeline, store, tracking
from rlv2.console import figures_text
from rlv2.pipeline import AgentTraining, Split, TrainConfig

DEFAULT_DB = "rlv2.duckdb"
"""The DuckDB file flows read when none is given (the demo's)."""
DEFAULT_CONFIG = TrainConfig()
"""The training configuration of a flow given none: every default of ``TrainConfig``."""

TRANSIENT_MLFLOW_CODES = frozenset({"TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"})
"""MLflow error codes of a store that may answer on a second try (a locked SQLite file)."""
DETERMINISTIC_OS_ERRORS = (
    FileNotFoundError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)
"""OS errors that a second try would meet again."""


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})
"""A full disk, a file over its size limit, a quota reached: seconds do not cure them."""


def is_transient(error: BaseException) -> bool:
    """Whether an error (or one it was raised from) may pass if the I/O is tried again."""
    for cause in _chain(error):
        if isinstance(cause, DETERMINISTIC_OS_ERRORS):
            return False
        if isinstance(cause, OSError) and cause.errno in FULL_ERRNOS:
            return False
        if isinstance(cause, OSError | duckdb.IOException):  # OSError: network, timeouts
            return True
        if isinstance(cause, MlflowException) and cause.error_code in TRANSIENT_MLFLOW_CODES:
            return True
    return False


def retry_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """``retry_condition_fn`` of the I/O tasks: retry a failure only if it is transient."""
    error = state.result(raise_on_failure=False)
    return isinstance(error, BaseException) and is_transient(error)


IO_RETRIES: dict[str, Any] = {
    "retries": 2,
    "retry_delay_seconds": 2,
    "retry_condition_fn": retry_transient,
}
"""Task options of a task whose I/O may fail transiently (and is safe to repeat)."""


def run_key(task_name: str, *parts: str) -> str | None:
    """The key of a task's MLflow run within its flow run (None outside a flow run).

    A retried task computes the same key and so finds, and completes, the run it began.
    """
    flow_run_id = flow_run.get_id()
    return "/".join([flow_run_id, task_name, *parts]) if flow_run_id else None


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


@task(cache_policy=NO_CACHE, **IO_RETRIES)
def plan_split(db: str, holdout_fraction: float) -> Split:
    """Split the history's decisions into a training window and a later holdout."""
    with store.connect(db, read_only=True) as con:
        first, last, n = history.decision_bounds(con)
        if n < 2:
            raise ValueError(f"{db}: {n} decision points in table signals: nothing to train on")
        cut = history.holdout_start(con, holdout_fraction)
    return pipeline.walk_forward_split(first, last, cut)


@task(cache_policy=NO_CACHE, **IO_RETRIES)
def plan_validation(db: str, validation_fraction: float, end: datetime) -> datetime:
    """Where the validation window starts: the last ``validation_fraction`` before ``end``."""
    with store.connect(db, read_only=True) as con:
        return history.holdout_start(con, validation_fraction, end)


@task(cache_policy=NO_CACHE, **IO_RETRIES)
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
    print(
        f"{agent}: {result.n_events} events x {config.epochs} epochs, "
        f"{figures_text(result.summary())}"
    )
    return result


@task(cache_policy=NO_CACHE, **IO_RETRIES)
def load_production(agent: str, config: TrainConfig) -> tuple[str | None, np.ndarray | None]:
    """The version under the alias ``production`` and its Q-table (None if its bins differ)."""
    version = tracking.production_version(agent)
    if version is None:
        return None, None
    loaded = tracking.load_q_table(agent, version=str(version.version))
    if loaded is None:
        return str(version.version), None
    q, space = loaded
    if space != config.replay.state_space(agent):
        print(f"{agent}: production uses other state bins; not comparable, ignored")
        return str(version.version), None
    return str(version.version), q


def db_path(db: str) -> str:
    """Absolute path of a local DuckDB file, with a clear error if it does not exist."""
    path = store.local_db_path(db).resolve()
    if not path.is_file():
        raise FileNotFoundError(
            f"DuckDB file {path} not found: run `rlv2 demo-data --db {db}` or `rlv2 ingest`"
        )
    return str(path)
