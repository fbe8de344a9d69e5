"""prefect.yaml for real: a Prefect server, `prefect deploy --all`, a process worker, MLflow.

Prefect runs only in subprocesses, each given its own environment (``PREFECT_HOME`` in a
tmp dir, ``PREFECT_API_URL`` at this module's server, no inherited ``PREFECT_*`` or
``MLFLOW_*``), so neither a session ``prefect_test_harness`` nor the settings of the pytest
process are touched. The server is a real one because schedules need its scheduler: an
ephemeral API never turns a cron schedule into runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from mlflow import MlflowClient
from prefect.utilities.schema_tools import validate

from rlv2 import tracking
from rlv2.demo import build_demo_database
from rlv2.domain import AGENT_SPECS
from rlv2.pipeline import TrainConfig
from rlv2.sweeps import SweepConfig

pytestmark = [pytest.mark.server, pytest.mark.slow, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[1]
PREFECT = Path(sys.executable).parent / "prefect"
POOL = "rlv2-process"
NIGHTLY = "nightly-retrain/nightly-retrain"
SWEEP = "sweep/weekly-sweep"
PROMOTE = "promote/promote"
SERVER_START_SECONDS = 90
SCHEDULER_SECONDS = 45
FLOW_RUN_SECONDS = 150
TERMINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}

T = TypeVar("T")


@dataclass
class Process:
    """A background command in its own process group, its output in a log file."""

    popen: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, args: list[str], env: dict[str, str], cwd: Path, log: Path) -> Process:
        with log.open("wb") as out:
            popen = subprocess.Popen(
                args,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return cls(popen, log)

    def report(self, lines: int = 80) -> str:
        """The end of the log, to attach to a failure."""
        text = self.log.read_text(errors="replace").splitlines()[-lines:]
        return f"\n--- {self.log.name} (exit code {self.popen.poll()}) ---\n" + "\n".join(text)

    def stop(self) -> None:
        """SIGTERM the whole group (flow-run children too), then SIGKILL what is left of it."""
        self._signal_group(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=15)
        self._signal_group(signal.SIGKILL)
        self.popen.wait(timeout=15)

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)


def wait_for(probe: Callable[[], T | None], seconds: float, what: str, *watched: Process) -> T:
    """Poll ``probe`` until it returns something; fail with the logs on timeout or a crash."""
    deadline = time.monotonic() + seconds
    while (value := probe()) is None:
        crashed = [p for p in watched if p.popen.poll() is not None]
        if crashed or time.monotonic() > deadline:
            reason = f"{crashed[0].log.stem} exited" if crashed else f"{seconds:.0f} s passed"
            pytest.fail(
                f"gave up waiting for {what}: {reason}" + "".join(p.report() for p in watched)
            )
        time.sleep(0.5)
    return value


@dataclass
class Server:
    """A `prefect server start` on loopback and the environment that points a CLI at it."""

    api_url: str
    env: dict[str, str]
    process: Process

    def cli(self, *args: str, cwd: Path = REPO, **env: str) -> str:
        """Run ``prefect ARGS`` against this server; its stdout, or a failure with the logs."""
        result = subprocess.run(
            [str(PREFECT), *args],
            cwd=cwd,
            env={**self.env, **env},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            pytest.fail(
                f"`prefect {' '.join(args)}` exited {result.returncode}:\n"
                f"{result.stdout}\n{result.stderr}" + self.process.report()
            )
        return result.stdout

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One call to the server's REST API."""
        response = httpx.request(
            method, self.api_url + path, json=body, timeout=30, trust_env=False
        )
        response.raise_for_status()
        return response.json()


def isolated_env(home: Path, **settings: str) -> dict[str, str]:
    """This process's environment less its Prefect and MLflow settings, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    return {**env, "PREFECT_HOME": str(home), "PREFECT_CLI_PROMPT": "false", **settings}


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A Prefect server with its own SQLite database, stopped after the module."""
    folder = tmp_path_factory.mktemp("prefect")
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = isolated_env(folder / "home", PREFECT_API_URL=api_url)
    server_env = {
        **env,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
    }
    command = [str(PREFECT), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    process = Process.start(command, server_env, folder, folder / "server.log")
    try:

        def healthy() -> bool | None:
            try:
                return (
                    httpx.get(f"{api_url}/health", timeout=2, trust_env=False).status_code == 200
                    or None
                )
            except httpx.HTTPError:
                return None

        wait_for(healthy, SERVER_START_SECONDS, f"{api_url}/health", process)
        yield Server(api_url, env, process)
    finally:
        process.stop()


@pytest.fixture(scope="module")
def deployments(server: Server) -> dict[str, dict[str, Any]]:
    """The pool created and `prefect deploy --all` run from the repository root, by name."""
    server.cli("work-pool", "create", POOL, "--type", "process")
    # PWD as a shell's `cd` leaves it: prefect.yaml's pull step reads it at deploy time.
    server.cli("deploy", "--all", "--no-prompt", cwd=REPO, PWD=str(REPO))
    flows = {flow["id"]: flow["name"] for flow in server.api("POST", "/flows/filter", {})}
    return {
        f"{flows[d['flow_id']]}/{d['name']}": d
        for d in server.api("POST", "/deployments/filter", {})
    }


@dataclass
class Worker:
    """A running `prefect worker start` and the MLflow store its flow runs log to."""

    process: Process
    mlflow_uri: str


@pytest.fixture
def worker(server: Server, deployments: dict[str, Any], tmp_path: Path) -> Iterator[Worker]:
    """A process worker polling the pool from a directory outside the checkout."""
    folder = tmp_path / "worker"
    folder.mkdir()
    mlflow_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {
        **server.env,
        "MLFLOW_TRACKING_URI": mlflow_uri,
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        # A pull step that left `{{ $PWD }}` to run time would land here and fail.
        "PWD": str(folder),
    }
    command = [str(PREFECT), "worker", "start", "--pool", POOL]
    process = Process.start(command, env, folder, tmp_path / "worker.log")
    try:
        yield Worker(process, mlflow_uri)
    finally:
        process.stop()


def schedules(deployment: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """A deployment's schedules as (cron, timezone, active)."""
    return [
        (s["schedule"]["cron"], s["schedule"]["timezone"], s["active"])
        for s in deployment["schedules"]
    ]


def test_deploy_creates_the_three_deployments(deployments: dict[str, dict[str, Any]]):
    assert set(deployments) == {NIGHTLY, SWEEP, PROMOTE}
    pull = [{"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}]
    for name, deployment in deployments.items():
        assert deployment["work_pool_name"] == POOL, name
        assert deployment["pull_steps"] == pull, name
        assert deployment["parameters"] == {}, name  # prefect.yaml states only differences
        schema = deployment["parameter_openapi_schema"]
        assert schema["properties"]["db"]["default"] == "rlv2.duckdb", name
        assert schema["properties"]["config"]["default"]["epochs"] == TrainConfig().epochs
        # a partial configuration is a valid parameter; a wrongly typed one is not
        assert not validate({"config": {"epochs": 5, "replay": {"alpha": 0.05}}}, schema)
        assert validate({"config": {"epochs": "five"}}, schema), name
        # one run of a deployment at a time: a second waits for the first
        limit = deployment.get("global_concurrency_limit") or {}
        assert limit.get("limit") == 1, name
        options = deployment.get("concurrency_options") or {}
        assert options.get("collision_strategy") == "ENQUEUE", name
    assert schedules(deployments[NIGHTLY]) == [("0 2 * * *", "UTC", True)]
    assert schedules(deployments[SWEEP]) == [("0 3 * * 0", "UTC", True)]
    assert schedules(deployments[PROMOTE]) == []
    search = deployments[SWEEP]["parameter_openapi_schema"]["properties"]["search"]
    assert search["default"]["method"] == "grid"
    assert search["default"]["alpha"] == list(SweepConfig().alpha)


def test_server_schedules_nightly_and_sunday_runs(
    server: Server, deployments: dict[str, dict[str, Any]]
):
    # Prefect 3.8.8's scheduler cannot insert runs with SQLAlchemy 2.1 ("Can't evaluate
    # bulk DML statement"): the deployments look right, yet no schedule ever fires.
    ids = {deployment["id"]: name for name, deployment in deployments.items()}
    query = {
        "flow_runs": {
            "deployment_id": {"any_": list(ids)},
            "state": {"type": {"any_": ["SCHEDULED"]}},
        },
        "sort": "EXPECTED_START_TIME_ASC",
    }

    def scheduled() -> dict[str, list[datetime]] | None:
        starts: dict[str, list[datetime]] = {name: [] for name in deployments}
        for run in server.api("POST", "/flow_runs/filter", query):
            if run["auto_scheduled"]:
                start = datetime.fromisoformat(run["expected_start_time"]).astimezone(UTC)
                starts[ids[run["deployment_id"]]].append(start)
        return starts if starts[NIGHTLY] and starts[SWEEP] else None

    starts = wait_for(scheduled, SCHEDULER_SECONDS, "scheduled runs", server.process)
    assert {(t.hour, t.minute) for t in starts[NIGHTLY]} == {(2, 0)}
    assert len({t.date() for t in starts[NIGHTLY]}) == len(starts[NIGHTLY])
    assert {(t.weekday(), t.hour, t.minute) for t in starts[SWEEP]} == {(6, 3, 0)}
    assert starts[PROMOTE] == []


def test_worker_runs_nightly_retrain_from_the_checkout(
    server: Server, worker: Worker, tmp_path: Path
):
    db = tmp_path / "history.duckdb"
    build_demo_database(db)
    config = json.dumps({"epochs": 2})
    out = server.cli(
        "deployment",
        "run",
        NIGHTLY,
        "--param",
        f"db={json.dumps(str(db))}",
        "--param",
        f"config={config}",
    )
    found = re.search(r"UUID: ([0-9a-f-]{36})", out)
    assert found, out
    run_id = found.group(1)

    def finished() -> dict[str, Any] | None:
        run = server.api("GET", f"/flow_runs/{run_id}")
        return run if run["state_type"] in TERMINAL_STATES else None

    what = f"flow run {run_id} to finish"
    run = wait_for(finished, FLOW_RUN_SECONDS, what, server.process, worker.process)
    if run["state_type"] != "COMPLETED":
        logs = server.api(
            "POST",
            "/logs/filter",
            {"logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC", "limit": 200},
        )
        pytest.fail(
            f"flow run {run_id} ended {run['state_type']}: {run['state']['message']}\n"
            + "\n".join(entry["message"] for entry in logs)
            + worker.process.report()
        )
    assert run["parameters"] == {"db": str(db), "config": {"epochs": 2}}

    client = MlflowClient(tracking_uri=worker.mlflow_uri, registry_uri=worker.mlflow_uri)
    experiment = client.get_experiment_by_name(tracking.EXPERIMENT)
    assert experiment is not None, f"no experiment {tracking.EXPERIMENT} in {worker.mlflow_uri}"
    runs = client.search_runs(
        [experiment.experiment_id], filter_string="tags.flow = 'nightly-retrain'"
    )
    assert [r.info.status for r in runs] == ["FINISHED"]
    assert runs[0].data.params["epochs"] == "2"
    assert runs[0].data.params["db.path"] == str(db.resolve())
    # with a server, the MLflow run links back to its flow run, named after what it did
    tags = runs[0].data.tags
    assert tags["prefect.flow_run_id"] == run_id
    assert (
        tags["prefect.flow_run_url"].startswith("http") and run_id in tags["prefect.flow_run_url"]
    )
    assert run["name"] == tags["prefect.flow_run_name"]
    assert run["name"].startswith("nightly-retrain-20")
    registered = {model.name for model in client.search_registered_models()}
    assert registered == {spec.model_name for spec in AGENT_SPECS.values()}
