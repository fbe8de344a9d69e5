"""The CLI's quick registry questions, asked of a real SQLite store and a real server."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from rlv2 import registry_probe
from tests.conftest import MlflowServer


def _register_one(client: MlflowClient, name: str) -> None:
    # a version's source is only a location here: nothing loads it
    client.create_registered_model(name)
    client.create_model_version(name, "s3://rlv2-probe/model")


def test_a_sqlite_store_is_read_without_mlflow_and_never_created(
    mlflow_sqlite: str, tmp_path: Path
) -> None:
    _register_one(MlflowClient(), "rlv2-probe")
    assert registry_probe.version_known(mlflow_sqlite, "rlv2-probe", 1) is True
    assert registry_probe.version_known(mlflow_sqlite, "rlv2-probe", "2") is False
    assert registry_probe.version_known(mlflow_sqlite, "rlv2-other", 1) is False
    assert registry_probe.version_known(mlflow_sqlite, "rlv2-probe", "latest") is None
    missing = tmp_path / "elsewhere" / "mlflow.db"
    assert registry_probe.version_known(f"sqlite:///{missing}", "rlv2-probe", 1) is False
    assert not missing.exists() and not missing.parent.exists()
    assert registry_probe.version_known("databricks", "rlv2-probe", 1) is None


@pytest.mark.server
def test_a_tracking_server_is_asked_over_rest_with_the_users_credentials(
    mlflow_auth_server: MlflowServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = mlflow_auth_server.uri
    mlflow_auth_server.sign_in(monkeypatch)
    _register_one(MlflowClient(uri, uri), "rlv2-probe-rest")
    assert registry_probe.version_known(uri, "rlv2-probe-rest", 1) is True
    assert registry_probe.version_known(uri, "rlv2-probe-rest", 2) is False
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
    assert registry_probe.version_known(uri, "rlv2-probe-rest", 1) is None  # 401: ask MLflow
    assert registry_probe.version_known("http://127.0.0.1:9", "rlv2-probe-rest", 1) is None
