"""A team's shared deployment: an MLflow server with basic-auth on loopback, where only
the gate's identity may move ``production`` (README "A team's shared deployment")."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.server import get_app_client

from rlv2 import tracking
from rlv2.actions import sizing_space
from rlv2.domain import AGENT_SPECS
from rlv2.states import SIZING_STATE_SPACE
from tests.conftest import MlflowServer

pytestmark = pytest.mark.server

GATE = ("gate", "gate-pass-8b1f")
READER = ("reader", "reader-pass-3c9e")


def sizing_q(best: int) -> np.ndarray:
    q = np.zeros((SIZING_STATE_SPACE.n_states, sizing_space.n))
    q[5, best] = 1.0
    return q


@pytest.fixture
def team(mlflow_auth_server: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The README's setup: the admin creates the models, a gate user with MANAGE on them
    and a reader with READ; the gate registers two sizing tables and promotes both."""
    server = mlflow_auth_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    server.sign_in(monkeypatch)
    auth = get_app_client("basic-auth", tracking_uri=server.uri)
    auth.create_user(*GATE)
    auth.create_user(*READER)
    admin = MlflowClient(server.uri, server.uri)
    for spec in AGENT_SPECS.values():
        admin.create_registered_model(spec.model_name)
        auth.grant_user_permission(GATE[0], "registered_model", spec.model_name, "MANAGE")
        auth.grant_user_permission(READER[0], "registered_model", spec.model_name, "READ")
    server.sign_in(monkeypatch, GATE)
    tracking.configure()
    for best in (1, 2):
        tracking.log_policy_model("position_sizing", sizing_q(best), SIZING_STATE_SPACE)
    assert tracking.promote("position_sizing", 1, {"reason": "first"}, expected=None) == "promoted"
    assert tracking.promote("position_sizing", 2, {"reason": "second"}, expected=1) == "promoted"
    yield server.uri
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    mlflow.set_registry_uri(None)  # type: ignore[arg-type]


def _rollback(
    server: MlflowServer, user: tuple[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("rlv2")), "rollback", "position_sizing"],
        env=server.env(*user),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_reader_cannot_move_production_and_the_gate_can(
    team: str, mlflow_auth_server: MlflowServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def production() -> str:
        found = tracking.production_version("position_sizing")
        return "" if found is None else str(found.version)

    assert production() == "2"
    refused = _rollback(mlflow_auth_server, READER, tmp_path)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    [line] = refused.stderr.strip().splitlines()  # one line, no traceback
    assert line.startswith("rlv2 rollback: error: MLflow store http://127.0.0.1:"), line
    assert "reader may not rollback position_sizing (PERMISSION_DENIED" in line, line
    mlflow_auth_server.sign_in(monkeypatch, READER)
    with pytest.raises(tracking.PermissionDenied, match="reader may not promote"):
        tracking.promote("position_sizing", 1, {"reason": "a reader"}, expected=2)
    mlflow_auth_server.sign_in(monkeypatch, GATE)
    assert production() == "2"  # nothing moved
    assert list(tracking.promotion_log("position_sizing")["decision"]) == ["promoted"] * 2

    done = _rollback(mlflow_auth_server, GATE, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "production is now v1" in done.stdout
    assert production() == "1"
    assert tracking.promotion_log("position_sizing")["decision"].iloc[0] == "rolled_back"
