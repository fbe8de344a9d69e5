"""Shared fixtures: a demo DuckDB history built once from the bundled real bars, MLflow
stores (SQLite, and a basic-auth tracking server on loopback)."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rlv2 import store
from rlv2.demo import build_demo_database

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DuckDB file holding the bundled bars and the demo history (read it, don't write)."""
    path = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    build_demo_database(path)
    return path


@pytest.fixture
def demo_con(demo_db: Path):
    """A read-only connection to the demo database."""
    with store.connect(demo_db, read_only=True) as con:
        yield con


@pytest.fixture(scope="session")
def prefect_harness():
    """One ephemeral Prefect API for the whole session (it takes seconds to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def schema_before_per_agent_propensities() -> str:
    """``schema.sql`` as it was before trades had meta_action_prob and sizing_action_prob."""
    schema = store.sql_text("schema")
    start = schema.index("    -- Each agent's own propensity")
    end = schema.index(");", start)
    old = schema[:start].rstrip().removesuffix(",") + "\n" + schema[end:]
    assert "meta_action_prob" not in old and "sizing_action_prob" not in old
    return without_account(old)


def without_account(schema: str) -> str:
    """``schema`` as it was before the optional account table (its ingest_log's CHECK
    listed five target tables)."""
    start = schema.index("-- account: the live system's own equity")
    end = schema.index(");", start) + len(");")
    old = schema[:start] + schema[end:]
    today = "'policy', 'account')"
    assert old.count(today) == 1
    return old.replace(today, "'policy')")


BIGINT_IDS = {
    "signal_id VARCHAR PRIMARY KEY CHECK (signal_id <> '' AND signal_id = trim(signal_id)),": (
        "signal_id BIGINT PRIMARY KEY,"
    ),
    "trade_id VARCHAR PRIMARY KEY CHECK (trade_id <> '' AND trade_id = trim(trade_id)),": (
        "trade_id BIGINT PRIMARY KEY,"
    ),
    "signal_id VARCHAR NOT NULL UNIQUE REFERENCES signals (signal_id),": (
        "signal_id BIGINT NOT NULL UNIQUE REFERENCES signals (signal_id),"
    ),
    "trade_id VARCHAR PRIMARY KEY REFERENCES trades (trade_id),": (
        "trade_id BIGINT PRIMARY KEY REFERENCES trades (trade_id),"
    ),
}
"""Today's id columns and what they were before ids became text."""


@pytest.fixture(scope="session")
def schema_of_first_release(schema_before_per_agent_propensities: str) -> str:
    """``schema.sql`` as it was first released: BIGINT ids, no per-agent propensities."""
    old = schema_before_per_agent_propensities
    for today, then in BIGINT_IDS.items():
        assert old.count(today) == 1, today
        old = old.replace(today, then)
    return old


@pytest.fixture
def mlflow_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh MLflow SQLite store in tmp_path, configured as tracking and registry URI."""
    import mlflow

    from rlv2 import tracking

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    assert tracking.configure() == uri
    yield uri
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    mlflow.set_registry_uri(None)  # type: ignore[arg-type]


@dataclass(frozen=True)
class MlflowServer:
    """A running ``mlflow server --app-name basic-auth`` on loopback and its admin."""

    uri: str
    admin: tuple[str, str]
    folder: Path

    def env(self, user: str, password: str) -> dict[str, str]:
        """This process's environment less MLflow settings, as ``user`` of the server."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        return {
            **env,
            "MLFLOW_TRACKING_URI": self.uri,
            "MLFLOW_TRACKING_USERNAME": user,
            "MLFLOW_TRACKING_PASSWORD": password,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }

    def sign_in(self, monkeypatch: pytest.MonkeyPatch, user: tuple[str, str] | None = None) -> None:
        """Make this process talk to the server as ``user`` (None: its admin)."""
        name, password = user or self.admin
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", name)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)


MLFLOW_SERVER_START_SECONDS = 180.0
"""How long a test waits for ``mlflow server`` to answer (seconds; slow on a busy host)."""


@pytest.fixture(scope="session")
def mlflow_auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """``mlflow server --app-name basic-auth`` on a free loopback port, its stores in a
    temporary folder, the venv's bin/ first on PATH; stopped after the session."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    admin = ("admin", "admin-" + secrets.token_hex(8))
    (folder / "auth.ini").write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{folder}/auth.db\n"
        f"admin_username = {admin[0]}\n"
        f"admin_password = {admin[1]}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        MLFLOW_FLASK_SERVER_SECRET_KEY=secrets.token_hex(16),
        MLFLOW_AUTH_CONFIG_PATH=str(folder / "auth.ini"),
        # no job runners (huey consumers): nothing here runs server-side jobs, and they
        # took most of the server's start-up
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
    )
    command = [
        str(bin_dir / "mlflow"),
        "server",
        "--app-name",
        "basic-auth",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{folder}/mlflow.db",
        "--artifacts-destination",
        str(folder / "artifacts"),
    ]
    log = (folder / "server.log").open("w")
    process = subprocess.Popen(
        command, env=env, cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + MLFLOW_SERVER_START_SECONDS
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"mlflow server did not start: {(folder / 'server.log').read_text()}"
                    ) from None
                time.sleep(0.5)
        yield MlflowServer(uri, admin, folder)
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the server and its uvicorn worker
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
