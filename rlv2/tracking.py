"""The edge to MLflow: training runs, curves, Q-table artifacts, the registry and its aliases.

Stores
    ``configure()`` points MLflow's tracking and registry URIs at ``tracking_uri()``:
    ``MLFLOW_TRACKING_URI`` if set, else the embedded SQLite store ``<cwd>/mlflow.db``
    (the registry needs a database store). Experiments ``rlv2`` (training runs) and
    ``rlv2-promotions`` (the promotion log) are created on demand; with a SQLite store
    their artifacts go to ``mlartifacts/<experiment>`` beside the database file, never to
    wherever the process happens to run.

Registry
    Each agent is a registered model (``AgentSpec.model_name``) whose versions are pyfunc models
    (``rlv2.serving.QTablePolicy``). Only aliases are used, never the deprecated stages:
    ``production`` is what a live consumer loads (``models:/rlv2-position-sizing@production``),
    ``previous`` is what ``rollback`` returns to.

Idempotence
    A version carries the tag ``q_sha256`` (``q_sha256()``: the Q-table's bytes and the state
    space's JSON). ``log_policy_model`` looks the digest up before logging anything, so a rerun
    returns the existing version instead of registering a duplicate. The digest is passed to
    ``create_model_version`` with the version itself, so no version ever lacks it; so is
    ``visits_sha256``, the digest of the training events per state logged beside the table
    (``rlv2.coverage``), which the served answers report.

Retries complete a run
    ``start_run(key=...)`` resumes the run tagged ``run_key = key`` if there is one (a
    retried task finds the run its first try began), and the writers skip what a run
    already holds: ``log_curves`` the steps already logged, ``log_metrics`` the values
    already there, ``log_policy_model`` a model the run already logged with the same
    Q-table. Params are logged again with the same values (MLflow accepts that);
    artifacts are overwritten.

One writer at a time
    Registering a version, moving aliases and writing the promotion log happen under the
    store's registry lock (``rlv2.registry_lock``: a file lock beside a SQLite store, a
    lease in the registry of a tracking server). Registration looks the digest up again
    under the lock, so two runs with one Q-table register it once. ``promote`` is a
    compare-and-set: it states the production version its gate compared against and
    moves nothing if production changed since (the decision is recorded as refused,
    naming what production became).

Crash safety of promotion
    ``promote`` moves ``previous`` onto the outgoing production version first, then
    ``production`` onto the candidate, then writes the promotion log. Interrupted after the
    first step, ``production`` still names the outgoing version (complete and valid); after
    the second, the promotion is done and the next gate run writes the missing log entry
    (``complete_promotion``). ``rollback`` likewise moves ``production`` before it removes
    ``previous``. A promotion-log entry's identifying tags are written after its figures,
    so a half-written entry is never read as one. The kill points of ``rlv2.faults``
    (test-only) prove a rerun repairs a ``kill -9`` at each of these steps.

Failed artifact writes
    A run whose artifacts cannot be written (a full disk) ends FAILED with one
    :class:`ArtifactWriteFailed` line; the nightly registers its versions only after
    every artifact of the run is written, so such a run registers nothing.

Permissions
    On a tracking server with basic-auth, a registry write refused to the user raises
    :class:`PermissionDenied`, one line naming the user and the write.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import subprocess
import tempfile
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from enum import Enum, StrEnum
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import mlflow.artifacts
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts
from mlflow.entities import Metric, Param, RunTag
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature, infer_signature
from mlflow.types.schema import AnyType, ColSpec, Schema
from numpy.typing import ArrayLike, NDArray

import rlv2
from rlv2 import faults, registry_probe, report, serving
from rlv2.coverage import Coverage
from rlv2.domain import AGENT_SPECS, agent_spec
from rlv2.processes import is_gone, this_process
from rlv2.qlearning import greedy_policy
from rlv2.registry_lock import registry_lock
from rlv2.registry_probe import sqlite_path
from rlv2.serving import (
    DIGEST_KEY,
    MODEL_CODE_LOCK,
    POLICY_CODE,
    PRODUCTION_ALIAS,
    SOURCE_KEY,
    check_agent,
    check_q_table,
    q_sha256,
    read_policy,
)
from rlv2.states import StateSpace

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "EXPERIMENT",
    "PREVIOUS_ALIAS",
    "PRODUCTION_ALIAS",
    "PROMOTION_EXPERIMENT",
    "complete_promotion",
    "configure",
    "fail_stale_runs",
    "find_run",
    "flatten_params",
    "load_q_table",
    "log_config",
    "log_curves",
    "log_figure",
    "log_policy_model",
    "log_q_table",
    "promote",
    "production_version",
    "promotion_log",
    "provenance",
    "q_sha256",
    "record_decision",
    "rollback",
    "start_run",
    "status",
    "tracking_uri",
    "version_tags",
]

_log = logging.getLogger(__name__)

EXPERIMENT = "rlv2"
"""Experiment of the training runs."""
PROMOTION_EXPERIMENT = "rlv2-promotions"
"""Experiment whose runs are the promotion log, one run per decision."""
PREVIOUS_ALIAS = "previous"
"""Alias of the version that was production before the last promotion."""
ARTIFACTS_DIR = "mlartifacts"
"""Directory, beside a SQLite store's database file, that holds its experiments' artifacts."""

MAX_KEY_LENGTH = 250
"""MLflow's limit on a param, metric or tag key."""
MAX_PARAM_LENGTH = 6000
"""MLflow's limit on a param value; longer values are cut and marked."""
METRICS_PER_BATCH = 1000
"""MLflow's limit on metrics in one ``log_batch`` call."""
FULL_HASH_MAX_BYTES = 1 << 30
"""Database files up to 1 GiB are fingerprinted by sha256; larger ones by size and mtime."""

DECIDED_PRODUCTION = ("promoted", "rolled_back")
"""Promotion-log decisions that put a version in production."""
PROMOTION_TAG_PREFIX = "promotion."
"""Prefix of the model-version tags that hold the latest promotion decision."""
PROMOTION_TAGS = ("decision", "reason", "run_id", "timestamp", "versus")
"""The latest decision's tags on a version (after ``PROMOTION_TAG_PREFIX``), for machines:
the verdict, why, its promotion-log run, when, and the champion it was judged against.
Named so that ``decision`` and ``reason`` sort (and are set) first; every figure is in the
promotion-log run and the version's description."""
RUN_KEY_TAG = "run_key"
"""Tag of a run opened with ``start_run(key=...)``: a retry finds the run by it."""
PROCESS_TAG = "rlv2.process"
"""Tag of every run rlv2 opens: the process writing it (``rlv2.processes.this_process``)."""
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}
"""MLflow's HTTP retry settings for a tracking server, unless the environment sets them:
a server that dies during a run fails its next call within about a minute instead of
MLflow's ~250 s (7 retries, backoff 2, 120 s timeout)."""
PROBE_SECONDS = 5.0
"""How long ``configure`` waits for a tracking server's ``/health`` before giving up."""


class StoreUnavailable(RuntimeError):
    """The MLflow store cannot be used: a missing folder, or a server that does not answer."""


class ArtifactWriteFailed(RuntimeError):
    """A run's artifacts could not be written (a full disk, a file too large): the run is
    FAILED, and since versions are registered only after every artifact, none of it is."""


# --- stores and experiments ---------------------------------------------------------------


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the embedded SQLite store ``<cwd>/mlflow.db``."""
    return registry_probe.store_uri()


def _sqlite_artifact_location(uri: str, experiment: str) -> str | None:
    """``mlartifacts/<experiment>`` beside a SQLite store's file; None for other stores."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri[len(prefix) :] in ("", ":memory:"):
        return None
    db_file = Path(uri[len(prefix) :].split("?", 1)[0]).resolve()
    return (db_file.parent / ARTIFACTS_DIR / experiment).as_uri()


def experiment_id(name: str) -> str:
    """Id of the experiment ``name``, created (or restored) if needed."""
    client = MlflowClient()
    found = client.get_experiment_by_name(name)
    if found is None:
        location = _sqlite_artifact_location(mlflow.get_tracking_uri(), name)
        try:
            return client.create_experiment(name, artifact_location=location)
        except MlflowException as err:  # created concurrently by another process
            found = client.get_experiment_by_name(name)
            if found is None:
                raise err
    if found.lifecycle_stage == "deleted":
        client.restore_experiment(found.experiment_id)
    return found.experiment_id


def configure(uri: str | None = None) -> str:
    """Point MLflow's tracking and registry at ``uri`` (default ``tracking_uri()``).

    Fails fast with :class:`StoreUnavailable` (one line naming the URI) when a SQLite
    store's folder does not exist (MLflow would create an empty store elsewhere than
    meant) or a tracking server does not answer within seconds (``HTTP_DEFAULTS``).
    A SQLite store is created under the registry lock (two processes creating one at
    once crash in MLflow's migrations). Runs left RUNNING by dead processes of this host
    are marked FAILED (``fail_stale_runs``).
    """
    uri = uri or tracking_uri()
    db_file = sqlite_path(uri)
    if db_file is not None and not db_file.parent.is_dir():
        raise StoreUnavailable(
            f"MLflow store {uri}: folder {db_file.parent} does not exist (create it, or "
            "fix MLFLOW_TRACKING_URI)"
        )
    if uri.startswith(("http://", "https://")):
        for key, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(key, value)
        _probe(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    creating = registry_lock(uri, "create the store") if db_file is not None else nullcontext()
    try:
        with creating:
            for name in (EXPERIMENT, PROMOTION_EXPERIMENT):
                experiment_id(name)
    except MlflowException as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
        raise StoreUnavailable(f"MLflow store {uri} is not usable: {first}") from error
    fail_stale_runs()
    return uri


def _probe(uri: str) -> None:
    """Raise :class:`StoreUnavailable` unless the server at ``uri`` answers within seconds.

    Any HTTP answer counts (a 401 of an authenticating server too); no answer, a refused
    connection or a name that does not resolve does not.
    """
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=PROBE_SECONDS):
            return
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise StoreUnavailable(
            f"MLflow store {uri} does not answer within {PROBE_SECONDS:.0f} s: {reason}"
        ) from None


def fail_stale_runs() -> list[str]:
    """Mark FAILED the RUNNING runs whose writing process, on this host, has ended.

    A killed process leaves its runs RUNNING forever; the next rlv2 process on the host
    ends them. Returns their ids.
    """
    client = MlflowClient()
    experiments = [experiment_id(name) for name in (EXPERIMENT, PROMOTION_EXPERIMENT)]
    running = client.search_runs(
        experiments, filter_string="attributes.status = 'RUNNING'", max_results=1000
    )
    failed = []
    for run in running:
        label = run.data.tags.get(PROCESS_TAG)
        if label and is_gone(label):
            client.set_tag(run.info.run_id, "rlv2.failed_reason", f"process {label} ended")
            client.set_terminated(run.info.run_id, "FAILED")
            failed.append(run.info.run_id)
    if failed:
        _log.warning("marked %d runs of ended processes FAILED: %s", len(failed), failed)
    return failed


class PermissionDenied(RuntimeError):
    """The tracking server refused a registry write to this user (basic-auth permissions)."""


DENIED_CODES = frozenset({"PERMISSION_DENIED", "UNAUTHENTICATED"})
"""MLflow error codes of a server that refuses the user (403, 401)."""


@contextmanager
def _write_lock(purpose: str) -> Iterator[None]:
    """The registry lock of the configured store (``rlv2.registry_lock``) for one write.

    A server refusing the user (a shared deployment's permissions, README "A team's
    shared deployment") raises :class:`PermissionDenied`, one line naming the user, the
    store and the write, instead of MLflow's exception.
    """
    uri = mlflow.get_registry_uri()
    try:
        with registry_lock(uri, purpose):
            yield
    except MlflowException as error:
        if error.error_code not in DENIED_CODES:
            raise
        user = os.environ.get("MLFLOW_TRACKING_USERNAME") or "this user (no credentials)"
        first = str(error).strip().splitlines()[0] if str(error).strip() else error.error_code
        raise PermissionDenied(
            f"MLflow store {uri}: {user} may not {purpose} ({error.error_code}: {first})"
        ) from None


# --- runs and params ----------------------------------------------------------------------


def _text(value: Any) -> str:
    """A param or tag value as text: string enums by value (``meta_strategy``), other enums
    by name (``TREND``), sequences as JSON, numbers as Python prints."""
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else list(value)
        return json.dumps([_jsonable(v) for v in items])
    return str(value)


def _jsonable(value: Any) -> Any:
    """A JSON-ready form of ``value`` (enums by name, numpy as Python, anything else as text)."""
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    if is_dataclass(value) and not isinstance(value, type):
        return _jsonable(asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _param_text(key: str, value: Any) -> str:
    """``_text(value)``, cut to MLflow's param limit with a marker giving the full length."""
    text = _text(value)
    if len(text) <= MAX_PARAM_LENGTH:
        return text
    marker = f"...[{len(text)} chars]"
    _log.warning("param %s: value of %d chars cut to %d", key, len(text), MAX_PARAM_LENGTH)
    return text[: MAX_PARAM_LENGTH - len(marker)] + marker


def flatten_params(params: Mapping[str, Any] | Any, prefix: str = "") -> dict[str, str]:
    """Flatten nested mappings (and dataclasses) to ``a.b`` keys with text values for MLflow."""
    if isinstance(params, Mapping):
        items: Mapping[str, Any] = params
    elif is_dataclass(params) and not isinstance(params, type):
        items = asdict(params)
    else:
        raise TypeError(f"params must be a mapping or a dataclass, got {type(params).__name__}")
    flat: dict[str, str] = {}
    for key, value in items.items():
        name = f"{prefix}{key}"
        if (is_dataclass(value) and not isinstance(value, type)) or isinstance(value, Mapping):
            flat.update(flatten_params(value, f"{name}."))
            continue
        if len(name) > MAX_KEY_LENGTH:
            raise ValueError(f"param key {name[:60]!r}...: longer than {MAX_KEY_LENGTH} chars")
        flat[name] = _param_text(name, value)
    return flat


def find_run(key: str, experiment: str = EXPERIMENT) -> str | None:
    """Id of the run of ``experiment`` tagged ``run_key = key`` (the oldest), or None."""
    if "'" in key:
        raise ValueError(f"run key {key!r}: a key must not contain a quote")
    found = MlflowClient().search_runs(
        [experiment_id(experiment)],
        filter_string=f"tags.{RUN_KEY_TAG} = '{key}'",
        order_by=["attributes.start_time ASC"],
        max_results=1,
    )
    return found[0].info.run_id if found else None


@contextmanager
def start_run(
    run_name: str,
    params: Mapping[str, Any] | Any,
    tags: Mapping[str, Any] | None = None,
    nested: bool = False,
    experiment: str = EXPERIMENT,
    key: str | None = None,
) -> Iterator[mlflow.ActiveRun]:
    """Open an MLflow run in ``experiment`` with flattened ``params``; yield the active run.

    With ``key``, the run tagged with it is resumed if one exists (see the module
    docstring: a retried task completes its own run instead of opening a second one).
    """
    all_tags = {k: _text(v) for k, v in (tags or {}).items()}
    all_tags[PROCESS_TAG] = this_process()
    resumed = None
    if key is not None:
        all_tags[RUN_KEY_TAG] = key
        resumed = find_run(key, experiment)
    run_id = resumed
    try:
        with mlflow.start_run(
            run_id=resumed,
            run_name=None if resumed else run_name,
            experiment_id=experiment_id(experiment),
            nested=nested,
            tags=all_tags,
        ) as run:
            run_id = run.info.run_id
            if resumed:
                _log.info("resuming MLflow run %s (%s)", resumed, key)
            mlflow.log_params(flatten_params(params))
            yield run
    except OSError as error:  # MLflow has marked the run FAILED on the way out
        raise ArtifactWriteFailed(
            f"MLflow run {run_id}: writing its artifacts failed ({error}); the run is "
            "FAILED and nothing of it is registered"
        ) from error


def _active_run_id(what: str) -> str:
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError(f"{what} needs an active run: open one with rlv2.tracking.start_run")
    return run.info.run_id


# --- provenance ---------------------------------------------------------------------------


def _db_fingerprint(db_path: str | Path) -> dict[str, Any]:
    path = Path(db_path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"provenance: database file {path} not found")
    stat = path.stat()
    if stat.st_size <= FULL_HASH_MAX_BYTES:
        with path.open("rb") as f:
            method, fingerprint = "sha256", hashlib.file_digest(f, "sha256").hexdigest()
    else:
        method, fingerprint = "size+mtime", f"{stat.st_size}:{stat.st_mtime_ns}"
    return {
        "path": str(path),
        "size_bytes": stat.st_size,
        "fingerprint": fingerprint,
        "fingerprint_method": method,
    }


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=Path(rlv2.__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("rlv2", "numpy", "numba", "pandas", "duckdb", "mlflow", "prefect"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def provenance(db_path: str | Path) -> dict[str, Any]:
    """Where a run's inputs came from: database fingerprint, git commit, package versions.

    The database file is fingerprinted by the sha256 of its bytes up to
    ``FULL_HASH_MAX_BYTES`` (1 GiB), beyond that by ``"<size>:<mtime_ns>"``;
    ``db.fingerprint_method`` says which. ``git.commit`` is ``git rev-parse HEAD`` of the
    tree holding the ``rlv2`` package (``"unknown"`` outside a repository); ``git.dirty``
    whether it has uncommitted changes. Pass it to ``start_run`` as (part of) ``params``.
    """
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain") if commit else None
    return {
        "db": _db_fingerprint(db_path),
        "git": {
            "commit": commit or "unknown",
            "dirty": "unknown" if status is None else bool(status),
        },
        "versions": _versions(),
    }


# --- curves and artifacts -----------------------------------------------------------------


def log_curves(prefix: str, steps: ArrayLike | None = None, **series: ArrayLike) -> None:
    """Log per-episode series as metrics ``<prefix>.<name>``, in batches.

    ``steps`` are the episode numbers of the points (default 0..n-1); steps the run
    already has (a resumed run) are not logged again.
    """
    run_id = _active_run_id("log_curves")
    client = MlflowClient()
    logged = client.get_run(run_id).data.metrics
    timestamp = int(datetime.now(UTC).timestamp() * 1000)
    metrics: list[Metric] = []
    for name, values in series.items():
        key = f"{prefix}.{name}"
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
        at = range(arr.size) if steps is None else np.asarray(steps, dtype=np.int64).tolist()
        pairs = zip(at, arr.tolist(), strict=True)
        done = {m.step for m in client.get_metric_history(run_id, key)} if key in logged else ()
        metrics.extend(
            Metric(key, v, timestamp, int(step)) for step, v in pairs if step not in done
        )
    for start in range(0, len(metrics), METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + METRICS_PER_BATCH])


def q_table_frame(agent: str, q: ArrayLike, state_space: StateSpace) -> pd.DataFrame:
    """One row per visited state (any nonzero Q): bin labels, greedy action, max Q, all Q."""
    arr = check_q_table(agent, q, state_space)
    states = np.flatnonzero(np.any(arr != 0.0, axis=1))
    bins = state_space.decode(states)
    greedy = greedy_policy(arr[states]) if states.size else np.zeros(0, dtype=np.int64)
    labels = serving.action_labels(agent)
    frame = pd.DataFrame({"state": states})
    for feature in state_space.features:
        frame[feature.name] = [feature.label(int(b)) for b in np.atleast_1d(bins[feature.name])]
    frame["greedy_action"] = greedy
    frame["greedy_label"] = [labels[a] for a in greedy]
    frame["max_q"] = arr[states, greedy]
    q_columns = pd.DataFrame(arr[states], columns=pd.Index(labels))
    return pd.concat([frame, q_columns], axis=1)


def log_q_table(agent: str, q: ArrayLike, state_space: StateSpace) -> None:
    """Log ``q_tables/<agent>.npy`` and a readable ``q_tables/<agent>.csv`` to the active run."""
    run_id = _active_run_id("log_q_table")
    arr = check_q_table(check_agent(agent), q, state_space)
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / f"{agent}.npy", arr)
        q_table_frame(agent, arr, state_space).to_csv(Path(tmp) / f"{agent}.csv", index=False)
        MlflowClient().log_artifacts(run_id, tmp, artifact_path="q_tables")


def log_config(config: Mapping[str, Any] | Any) -> None:
    """Log the run's full configuration as ``config.json`` (params hold a flattened copy)."""
    run_id = _active_run_id("log_config")
    text = json.dumps(_jsonable(config), indent=2, sort_keys=True)
    MlflowClient().log_text(run_id, text, "config.json")


# --- the registry -------------------------------------------------------------------------


def _version_with_digest(name: str, digest: str) -> ModelVersion | None:
    found = MlflowClient().search_model_versions(
        f"name = '{name}' and tags.q_sha256 = '{digest}'",
        order_by=["version_number ASC"],
    )
    return found[0] if found else None


def _signature(
    agent: str, state_space: StateSpace, q: NDArray[np.float64], coverage: Coverage | None
) -> ModelSignature:
    """Signature inferred from an example; a categorical feature (regime) takes names or codes."""
    example = serving.example_features(state_space)
    answers = None if coverage is None else serving.CoverageAnswers.of(coverage, state_space)
    with warnings.catch_warnings():
        # state, action, leverage and the counts are integers that are never missing
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        signature = infer_signature(
            example, serving.greedy_actions(q, state_space, agent, example, answers)
        )
    categorical = {f.name for f in state_space.features if f.categories}
    inputs = Schema(
        [
            ColSpec(AnyType(), spec.name) if spec.name in categorical else spec
            for spec in signature.inputs.inputs
        ]
    )
    return ModelSignature(inputs=inputs, outputs=signature.outputs)


def _requirements() -> list[str]:
    """Pinned requirements of the pyfunc model (``rlv2`` itself must be installed to serve)."""
    versions = _versions()
    return [
        f"{p}=={versions[p]}"
        for p in ("mlflow", "numpy", "numba", "pandas", "rlv2")
        if p in versions
    ]


@contextmanager
def _run_for(agent: str) -> Iterator[mlflow.ActiveRun]:
    """The active run, or a new run in the training experiment if there is none."""
    active = mlflow.active_run()
    if active is not None:
        yield active
        return
    with mlflow.start_run(
        run_name=f"{agent}-policy",
        experiment_id=experiment_id(EXPERIMENT),
        tags={PROCESS_TAG: this_process()},
    ) as run:
        yield run


def log_policy_model(
    agent: str,
    q: ArrayLike,
    state_space: StateSpace,
    registered: bool = True,
    tags: Mapping[str, Any] | None = None,
    coverage: Coverage | None = None,
) -> ModelVersion | None:
    """Log the agent's greedy policy as a pyfunc model and register it, once per Q-table.

    Returns the registered version, or None with ``registered=False``. If a version of
    the agent's model already has this Q-table's ``q_sha256``, it is returned as is and
    nothing is logged. Logs into the active run, or a new ``<agent>-policy`` run. With
    ``coverage``, the training events per state go beside the table (``visits.npy``),
    verified at every load by their own digest ``visits_sha256`` (model config and
    version tag), so each served answer says what data stood behind it.
    """
    name = agent_spec(agent).model_name
    arr = check_q_table(agent, q, state_space)
    digest = q_sha256(arr, state_space)
    if registered:
        existing = _version_with_digest(name, digest)
        if existing is not None:
            _log.info(
                "%s: Q-table %s already registered as version %s",
                name,
                digest[:12],
                existing.version,
            )
            return _with_missing_tags(existing, tags)
    digests = {DIGEST_KEY: digest}
    if coverage is not None:
        digests[serving.VISITS_DIGEST_KEY] = coverage.sha256()
    with _run_for(agent) as run, tempfile.TemporaryDirectory() as tmp:
        model_uri = _model_logged_in_run(run, digest)
        if model_uri is not None:  # a retry: the run logged it, its registration failed
            return _register(model_uri, name, agent, digests, run.info.run_id, registered, tags)
        q_path, space_path = Path(tmp) / "q.npy", Path(tmp) / "space.json"
        np.save(q_path, arr, allow_pickle=False)
        space_path.write_text(json.dumps({"agent": agent, "state_space": state_space.to_dict()}))
        config: dict[str, Any] = {
            DIGEST_KEY: digest,
            SOURCE_KEY: f"{name} model of run {run.info.run_id}",
        }
        artifacts = {serving.Q_TABLE_ARTIFACT: str(q_path), serving.SPACE_ARTIFACT: str(space_path)}
        model_tags = {"agent": agent, DIGEST_KEY: digest}
        if coverage is not None:
            coverage.check(state_space, name)
            visits_path = Path(tmp) / "visits.npy"
            np.save(visits_path, coverage.visits, allow_pickle=False)
            artifacts[serving.VISITS_ARTIFACT] = str(visits_path)
            config.update({serving.VISITS_DIGEST_KEY: coverage.sha256(), **coverage.to_config()})
            model_tags[serving.VISITS_DIGEST_KEY] = digests[serving.VISITS_DIGEST_KEY]
        with MODEL_CODE_LOCK:  # MLflow runs the code file to validate the model
            info = mlflow.pyfunc.log_model(
                name=f"{agent}_policy",
                python_model=str(POLICY_CODE),
                model_config=config,
                artifacts=artifacts,
                signature=_signature(agent, state_space, arr, coverage),
                input_example=serving.example_features(state_space),
                pip_requirements=_requirements(),
                tags=model_tags,
            )
        run_id = run.info.run_id
    return _register(info.model_uri, name, agent, digests, run_id, registered, tags)


def _with_missing_tags(version: ModelVersion, tags: Mapping[str, Any] | None) -> ModelVersion:
    """An existing version with the ``tags`` it lacks added; a tag it has is kept.

    A rerun that reproduces a registered Q-table knows what produced it (its learner, the
    windows it trained on): a version registered before such a tag existed gains it, and
    one that has it keeps what its first run recorded (a differing value is logged).
    """
    client = MlflowClient()
    for key, value in (tags or {}).items():
        text = _text(value)
        if key not in version.tags:
            client.set_model_version_tag(version.name, version.version, key, text)
        elif version.tags[key] != text:
            _log.warning(
                "%s v%s keeps its tag %s=%s (this run: %s)",
                version.name,
                version.version,
                key,
                version.tags[key],
                text,
            )
    return client.get_model_version(version.name, version.version)


def _model_logged_in_run(run: mlflow.ActiveRun, digest: str) -> str | None:
    """URI of a model the run already logged for this Q-table digest, or None."""
    found = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run.info.run_id}' AND tags.q_sha256 = '{digest}'",
        max_results=1,
        output_format="list",
    )
    return found[0].model_uri if found else None


def _register(
    model_uri: str,
    name: str,
    agent: str,
    digests: Mapping[str, str],
    run_id: str,
    registered: bool,
    tags: Mapping[str, Any] | None,
) -> ModelVersion | None:
    """Register a logged policy model under ``name`` (unless ``registered`` is False);
    ``digests`` (``q_sha256``, and ``visits_sha256`` with coverage) become its tags."""
    if not registered:
        return None
    digest = digests[DIGEST_KEY]
    version_tags = {k: _text(v) for k, v in (tags or {}).items()}
    version_tags.update({"agent": agent, **digests, "run_id": run_id})
    with _write_lock(f"register {name}"):
        # looked up again under the lock: a concurrent run may have registered the table
        existing = _version_with_digest(name, digest)
        if existing is not None:
            _log.info(
                "%s: Q-table %s registered meanwhile as v%s", name, digest[:12], existing.version
            )
            return existing
        return mlflow.register_model(model_uri, name, tags=version_tags)


def _by_alias(agent: str, alias: str) -> ModelVersion | None:
    try:
        return MlflowClient().get_model_version_by_alias(agent_spec(agent).model_name, alias)
    except MlflowException as err:
        if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def production_version(agent: str) -> ModelVersion | None:
    """The agent's version aliased ``production``, or None."""
    return _by_alias(agent, PRODUCTION_ALIAS)


def _get_version(agent: str, version: int | str) -> ModelVersion:
    name = agent_spec(agent).model_name
    try:
        return MlflowClient().get_model_version(name, str(version))
    except MlflowException as err:
        raise ValueError(f"{name}: no version {version} in the registry") from err


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _log_entry(
    agent: str, version: int | str, decision: str, figures: Mapping[str, Any]
) -> tuple[str, str]:
    """Write one promotion-log run (params, numeric metrics, tags); return its timestamp
    and run id.

    The tags that make the run an entry (``agent``, ``decision``, ...) are written last,
    after every figure: a process killed while writing leaves a run that the log ignores
    (``promotion_log`` reads runs with a ``decision`` tag only), so a rerun writes the
    entry whole instead of taking a half-written one for it.
    """
    timestamp = _now()
    client = MlflowClient()
    tags = {
        "agent": agent,
        "model_name": agent_spec(agent).model_name,
        "version": str(version),
        "decision": decision,
        "timestamp": timestamp,
    }
    run = client.create_run(
        experiment_id(PROMOTION_EXPERIMENT),
        run_name=f"{agent}-v{version}-{decision}",
        tags={PROCESS_TAG: this_process()},
    )
    params = [Param(k, v) for k, v in flatten_params(figures).items()]
    metrics = [
        Metric(k, float(v), int(datetime.now(UTC).timestamp() * 1000), 0)
        for k, v in figures.items()
        if isinstance(v, int | float | np.number) and not isinstance(v, bool)
    ]
    client.log_batch(run.info.run_id, metrics=metrics, params=params)
    if decision == PROMOTED:
        faults.kill_point("decision-log")
    client.log_batch(run.info.run_id, tags=[RunTag(k, v) for k, v in tags.items()])
    client.set_terminated(run.info.run_id)
    return timestamp, run.info.run_id


def record_decision(agent: str, candidate_version: int | str, decision: Mapping[str, Any]) -> str:
    """Record a promotion decision on the candidate version's tags and in the promotion log.

    ``decision`` holds ``decision`` ("promoted" or "refused") and its figures (metric,
    candidate, champion, metric_diff, ci_low, ci_high, margin, n, reason, ...). Every item
    becomes a param of a run in ``rlv2-promotions`` (numeric items also its metrics); the
    version gets the handful of tags of ``PROMOTION_TAGS`` (replacing an earlier
    decision's), for machines: the figures are for people, in the version's description
    (``describe_version``). Returns the promotion-log run's id.
    """
    if "decision" not in decision:
        raise ValueError("record_decision: the decision dict needs a 'decision' item")
    with _write_lock(f"record decision {agent} v{candidate_version}"):
        version = _get_version(agent, candidate_version)
        figures = {k: v for k, v in decision.items() if k != "decision"}
        timestamp, log_run = _log_entry(agent, version.version, str(decision["decision"]), figures)
        client = MlflowClient()
        items = {
            "decision": decision["decision"],
            "reason": decision.get("reason", ""),
            "run_id": log_run,
            "timestamp": timestamp,
            "versus": _versus(decision),
        }
        tags = {f"{PROMOTION_TAG_PREFIX}{k}": _text(items[k]) for k in PROMOTION_TAGS}
        for key, value in tags.items():
            client.set_model_version_tag(version.name, version.version, key, value)
        for key in version.tags:
            if key.startswith(PROMOTION_TAG_PREFIX) and key not in tags:
                client.delete_model_version_tag(version.name, version.version, key)
        return log_run


def _versus(decision: Mapping[str, Any]) -> str:
    """What a decision judged the candidate against: the gate's champion name
    (``production v3``, ``logged``), else the outgoing production version."""
    champion = decision.get("champion")
    if isinstance(champion, str) and champion:
        return champion
    version = decision.get("champion_version")
    return f"production v{version}" if version is not None else ""


def _latest_production_entry(agent: str) -> dict[str, Any] | None:
    """The newest promotion-log entry that put a version of ``agent`` in production."""
    log = promotion_log(agent, limit=200)
    hits = log[log["decision"].isin(DECIDED_PRODUCTION)] if not log.empty else log
    return None if hits.empty else hits.iloc[0].to_dict()


PROMOTED = "promoted"
"""``promote`` moved production onto the candidate."""
STALE = "stale"
"""``promote`` refused: production changed since the gate ran."""
ALREADY = "already"
"""``promote`` found the candidate in production already (nothing moved)."""


def _named(version: str | None) -> str:
    return f"v{version}" if version is not None else "none (the logged behaviour)"


def promote(
    agent: str,
    version: int | str,
    figures: Mapping[str, Any],
    *,
    expected: int | str | None,
) -> str:
    """Make ``version`` production if production is still ``expected``; say what happened.

    Compare-and-set under the registry lock: ``expected`` is the production version the
    gate compared the candidate against (None: there was none). Production is read again
    right before any alias moves, and the outcome is one of

    - ``PROMOTED``: production was ``expected``. ``previous`` moves onto it first, then
      ``production`` onto the candidate (an interruption never leaves ``production`` off
      a complete version), then the decision and ``figures`` are recorded, naming
      ``expected`` as ``champion_version``;
    - ``STALE``: production changed since the gate ran. Nothing moves; the decision is
      recorded as refused, saying what production became (the figures are the gate's);
    - ``ALREADY``: the candidate is production already (a concurrent run promoted the
      same table, or this promotion was interrupted after moving the alias). Nothing
      moves; a missing log entry is completed (``complete_promotion``).
    """
    with _write_lock(f"promote {agent} v{version}"):
        candidate = _get_version(agent, version)
        current = production_version(agent)
        found = None if current is None else str(current.version)
        wanted = None if expected is None else str(expected)
        if found == str(candidate.version):
            previous = _by_alias(agent, PREVIOUS_ALIAS)
            same_gate = wanted == (None if previous is None else str(previous.version))
            complete_promotion(agent, candidate.version, figures if same_gate else None)
            return ALREADY
        if found != wanted:
            reason = (
                f"production changed since the gate ran: it compared against "
                f"{_named(wanted)}, production is now {_named(found)}; not promoted "
                "(run the gate again)"
            )
            gate = {"gate_reason": figures["reason"]} if "reason" in figures else {}
            refused = {**figures, **gate, "reason": reason, "decision": "refused"}
            record_decision(agent, candidate.version, refused)
            _log.warning("%s v%s: %s", candidate.name, candidate.version, reason)
            return STALE
        faults.kill_point("registered")
        client = MlflowClient()
        if current is not None:
            client.set_registered_model_alias(candidate.name, PREVIOUS_ALIAS, current.version)
        client.set_registered_model_alias(candidate.name, PRODUCTION_ALIAS, candidate.version)
        faults.kill_point("alias-moved")
        champion = {"champion_version": current.version} if current is not None else {}
        record_decision(agent, candidate.version, {**champion, **figures, "decision": PROMOTED})
        return PROMOTED


def complete_promotion(
    agent: str, version: int | str, figures: Mapping[str, Any] | None = None
) -> bool:
    """Record the promotion of ``version`` if it is production and the log lacks it.

    A promotion killed after moving ``production`` and before writing its log entry is
    recorded on the next gate run: ``figures`` if they are that promotion's (else a
    reason saying the entry was written after the fact), ``previous`` as its champion.
    Returns whether an entry was written.
    """
    with _write_lock(f"complete promotion {agent} v{version}"):
        current = production_version(agent)
        if current is None or str(current.version) != str(version):
            return False
        latest = _latest_production_entry(agent)
        if latest is not None and str(latest["version"]) == str(version):
            return False
        outgoing = _by_alias(agent, PREVIOUS_ALIAS)
        champion = {"champion_version": outgoing.version} if outgoing is not None else {}
        entry = (
            figures
            if figures is not None
            else {
                "reason": "recorded after the fact: production was on this version without a "
                "log entry (a promotion interrupted after moving the alias)"
            }
        )
        record_decision(agent, version, {**champion, **entry, "decision": PROMOTED})
        _log.warning("%s v%s: recorded an interrupted promotion", current.name, version)
        return True


def rollback(agent: str, reason: str = "") -> ModelVersion:
    """Move ``production`` back to ``previous``; tag the rolled-back version; drop ``previous``.

    Raises ``ValueError`` if the agent has no ``previous`` version. The rollback is a
    ``rolled_back`` entry in the promotion log.
    """
    name = agent_spec(agent).model_name
    with _write_lock(f"rollback {agent}"):
        restored = _by_alias(agent, PREVIOUS_ALIAS)
        if restored is None:
            raise ValueError(
                f"{name}: no '{PREVIOUS_ALIAS}' version to roll back to (nothing was "
                "promoted over a production version, or it was already rolled back)"
            )
        current = production_version(agent)
        client = MlflowClient()
        outgoing = current if current is not None and current.version != restored.version else None
        if outgoing is not None:
            client.set_model_version_tag(name, outgoing.version, "rolled_back_at", _now())
        client.set_registered_model_alias(name, PRODUCTION_ALIAS, restored.version)
        client.delete_registered_model_alias(name, PREVIOUS_ALIAS)
        figures: dict[str, Any] = {"reason": reason} if reason else {}
        if outgoing is not None:
            figures["rolled_back_version"] = int(outgoing.version)
        _log_entry(agent, restored.version, "rolled_back", figures)
        return client.get_model_version(name, str(restored.version))


# --- reading back -------------------------------------------------------------------------

_LOG_COLUMNS = ["timestamp", "agent", "version", "decision", "model_name", "run_id"]


def promotion_log(agent: str | None = None, limit: int = 50) -> pd.DataFrame:
    """Promotion decisions and rollbacks, newest first: one row per log entry with figures."""
    client = MlflowClient()
    found = client.get_experiment_by_name(PROMOTION_EXPERIMENT)
    if found is None:
        return pd.DataFrame(columns=_LOG_COLUMNS)
    filter_string = f"tags.agent = '{check_agent(agent)}'" if agent else ""
    runs = client.search_runs(
        [found.experiment_id],
        filter_string=filter_string,
        max_results=limit,
        order_by=["attributes.start_time DESC", "tags.timestamp DESC"],
    )
    rows = []
    for run in runs:
        tags = run.data.tags
        if "decision" not in tags:  # an entry its writer did not finish (``_log_entry``)
            continue
        rows.append(
            {
                **run.data.params,
                **run.data.metrics,
                "timestamp": pd.Timestamp(tags.get("timestamp")),
                "agent": tags.get("agent"),
                "version": int(tags.get("version", "0")),
                "decision": tags.get("decision"),
                "model_name": tags.get("model_name"),
                "run_id": run.info.run_id,
            }
        )
    if not rows:
        return pd.DataFrame(columns=_LOG_COLUMNS)
    log = pd.DataFrame(rows)
    log = log[_LOG_COLUMNS + [c for c in log.columns if c not in _LOG_COLUMNS]]
    newest_first = log.sort_values(  # pyright: ignore[reportCallIssue]
        "timestamp", ascending=False, kind="stable"
    )
    return newest_first.reset_index(drop=True)


def _since(agent: str, version: ModelVersion) -> str:
    """When ``version`` became production: its newest log entry doing so, else its creation."""
    log = promotion_log(agent, limit=200)
    if not log.empty:
        hits = log[
            (log["version"] == int(version.version)) & log["decision"].isin(DECIDED_PRODUCTION)
        ]
        if not hits.empty:
            return hits.iloc[0]["timestamp"].isoformat()
    created = datetime.fromtimestamp(version.creation_timestamp / 1000, UTC)
    return created.isoformat(timespec="milliseconds")


def _promotion_figures(agent: str, version: ModelVersion) -> dict[str, Any]:
    """The figures of the decision that promoted ``version`` (its newest), from the log."""
    log = promotion_log(agent, limit=200)
    if log.empty:
        return {}
    hits = log[(log["version"] == int(version.version)) & (log["decision"] == "promoted")]
    if hits.empty:
        return {}
    row = hits.iloc[0].to_dict()
    return {k: v for k, v in row.items() if isinstance(v, str) or pd.notna(v)}


def status() -> list[dict[str, Any]]:
    """Per agent: production version, its run, since when, its promotion figures, previous."""
    rows = []
    for agent, spec in AGENT_SPECS.items():
        name = spec.model_name
        production = production_version(agent)
        previous = _by_alias(agent, PREVIOUS_ALIAS)
        figures = _promotion_figures(agent, production) if production else {}
        rows.append(
            {
                "agent": agent,
                "model_name": name,
                "production_version": int(production.version) if production else None,
                "run_id": production.run_id if production else None,
                "since": _since(agent, production) if production else None,
                "figures": figures,
                "previous_version": int(previous.version) if previous else None,
            }
        )
    return rows


def load_q_table(
    agent: str, alias: str = PRODUCTION_ALIAS, version: int | str | None = None
) -> tuple[NDArray[np.float64], StateSpace] | None:
    """The Q-table and state space of the agent's aliased (or numbered) version, or None.

    Reads the model's two plain artifacts (no model code runs, nothing is unpickled) and
    verifies them against the version's ``q_sha256`` tag: a mismatch, a table that is not
    float64, of the wrong shape or not finite raises ``ValueError`` naming the version.
    """
    found = _get_version(agent, version) if version is not None else _by_alias(agent, alias)
    if found is None:
        return None
    source, digest = serving.registered_digest(agent, found.version)
    uri = f"models:/{found.name}/{found.version}"
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(download_artifacts(uri, dst_path=tmp))
        artifacts = _model_artifacts(local, source)
        owner, q, space = read_policy(
            artifacts[serving.Q_TABLE_ARTIFACT], artifacts[serving.SPACE_ARTIFACT], digest, source
        )
    if owner != check_agent(agent):
        raise ValueError(f"{source}: a {owner} policy, not {agent}; refused")
    return q, space


def _model_artifacts(model_dir: Path, source: str) -> dict[str, Path]:
    """The pyfunc artifacts of a downloaded model, by key, from its MLmodel file."""
    flavor = Model.load(str(model_dir)).flavors.get("python_function", {})
    saved = flavor.get("artifacts", {})
    try:
        return {
            key: model_dir / saved[key]["path"]
            for key in (serving.Q_TABLE_ARTIFACT, serving.SPACE_ARTIFACT)
        }
    except (KeyError, TypeError):
        raise ValueError(f"{source}: not an rlv2 Q-table policy model") from None


def version_tags(agent: str, version: int | str) -> dict[str, str]:
    """The tags of a registered version of the agent's model (ValueError if it is absent)."""
    return dict(_get_version(agent, version).tags)


def latest_version(agent: str) -> str | None:
    """The newest registered version of the agent's model, or None."""
    name = agent_spec(agent).model_name
    versions = MlflowClient().search_model_versions(f"name = '{name}'")
    if not versions:
        return None
    return str(max(int(v.version) for v in versions))


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    """Log summary metrics to the active run (non-finite values are skipped, with a warning).

    A metric whose latest value in the run is already this value is not logged again.
    """
    finite = {k: float(v) for k, v in metrics.items() if np.isfinite(float(v))}
    for key in sorted(set(metrics) - set(finite)):
        _log.warning("metric %s is not finite (%r); not logged", key, metrics[key])
    logged = MlflowClient().get_run(_active_run_id("log_metrics")).data.metrics
    new = {k: v for k, v in finite.items() if logged.get(k) != v}
    if new:
        mlflow.log_metrics(new, step=step)


def log_table(frame: pd.DataFrame, artifact_file: str) -> None:
    """Log a DataFrame to the active run as a CSV artifact."""
    run_id = _active_run_id("log_table")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(artifact_file).name
        frame.to_csv(path, index=False)
        folder = str(Path(artifact_file).parent)
        MlflowClient().log_artifact(run_id, str(path), None if folder == "." else folder)


# --- what a person reads: figures, descriptions, the run's record -------------------------

FIGURES_DIR = "figures"
"""Artifact folder of a run's figures (``figures/<name>.png``)."""
REPORT_FILE = "report.html"
"""Artifact name of a run's self-contained report."""


def log_figure(figure: Figure, name: str, run_id: str | None = None) -> None:
    """Log a matplotlib figure as ``figures/<name>.png`` on a run (default: the active one)."""
    run = run_id or _active_run_id("log_figure")
    MlflowClient().log_figure(run, figure, f"{FIGURES_DIR}/{name}.png")


def set_run_tags(run_id: str, tags: Mapping[str, Any]) -> None:
    """Set tags on a run (finished or not); values as text."""
    client = MlflowClient()
    for key, value in tags.items():
        client.set_tag(run_id, key, _text(value))


def run_link(run_id: str) -> str:
    """Where a person opens a run: the UI's address on a tracking server, else its
    fragment (``#/experiments/1/runs/<id>``, which the MLflow UI and a version's
    description resolve)."""
    run = MlflowClient().get_run(run_id)
    fragment = f"#/experiments/{run.info.experiment_id}/runs/{run_id}"
    uri = mlflow.get_tracking_uri()
    return f"{uri.rstrip('/')}/{fragment}" if uri.startswith(("http://", "https://")) else fragment


def artifact_uri(run_id: str, path: str) -> str:
    """The URI of one artifact of a run (``file://...`` with a SQLite store)."""
    root = MlflowClient().get_run(run_id).info.artifact_uri or ""
    return f"{root.rstrip('/')}/{path}"


def version_of(agent: str, version: int | str) -> ModelVersion:
    """A registered version of the agent's model (ValueError if there is none)."""
    return _get_version(agent, version)


def describe_version(agent: str, version: int | str, description: str) -> None:
    """Set a registered version's description (markdown, shown on its page in the UI)."""
    found = _get_version(agent, version)
    MlflowClient().update_model_version(found.name, found.version, description=description)


def decisions_of(agent: str, version: int | str) -> list[dict[str, Any]]:
    """Every promotion-log entry of one version, newest first, as dicts of its figures."""
    log = promotion_log(agent, limit=1000)
    if log.empty:
        return []
    rows = [row.to_dict() for _, row in log[log["version"] == int(version)].iterrows()]
    return [{k: v for k, v in r.items() if isinstance(v, str) or pd.notna(v)} for r in rows]


def run_summary(run_id: str) -> dict[str, Any]:
    """A run as a person reads it: name, times, status, params, metrics, tags."""
    try:
        run = MlflowClient().get_run(run_id)
    except MlflowException as err:
        raise ValueError(f"MLflow run {run_id!r} not found in {mlflow.get_tracking_uri()}") from err
    return {
        "run_id": run_id,
        "name": run.info.run_name,
        "experiment_id": run.info.experiment_id,
        "status": run.info.status,
        "start": _utc(run.info.start_time),
        "end": _utc(run.info.end_time),
        "params": dict(run.data.params),
        "metrics": dict(run.data.metrics),
        "tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
        "link": run_link(run_id),
    }


def _utc(millis: int | None) -> str:
    if not millis:
        return ""
    return datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="seconds")


def run_artifacts(run_id: str, folder: str | None = None) -> dict[str, bytes]:
    """The bytes of a run's artifacts in one folder (default: the top), by path."""
    client = MlflowClient()
    out: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for item in client.list_artifacts(run_id, folder):
            if item.is_dir:
                continue
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=item.path, dst_path=tmp
            )
            out[item.path] = Path(local).read_bytes()
    return out


def log_text(run_id: str, text: str, artifact_file: str) -> None:
    """Write ``text`` as one artifact of a run (overwriting it)."""
    MlflowClient().log_text(run_id, text, artifact_file)


def _by_name(pngs: Mapping[str, bytes]) -> dict[str, bytes]:
    """Figures by name: ``figures/gate.png`` is ``gate``."""
    return {
        path.rsplit("/", 1)[-1].removesuffix(".png"): png
        for path, png in pngs.items()
        if path.endswith(".png")
    }


def gate_records(run: Mapping[str, Any]) -> list[report.GateRecord]:
    """The newest decision on each version a run registered (its ``version.<agent>`` tags),
    with the gate's figures from the decision's promotion-log run."""
    records = []
    for agent in AGENT_SPECS:
        version = run["tags"].get(f"version.{agent}")
        for decision in decisions_of(agent, version)[:1] if version else []:
            charts = _by_name(run_artifacts(str(decision["run_id"]), FIGURES_DIR))
            records.append(report.GateRecord(str(agent), str(version), decision, charts))
    return records


def run_report(run_id: str) -> str:
    """The self-contained HTML report of one run, read back from the store
    (``rlv2.report.render_html``): its figures, CSV tables and promotion decisions."""
    run = run_summary(run_id)
    figures = _by_name(run_artifacts(run_id, FIGURES_DIR))
    tables = {
        path: data.decode("utf-8")
        for path, data in run_artifacts(run_id).items()
        if path.endswith(".csv")
    }
    return report.render_html(run, figures, tables, gate_records(run))
