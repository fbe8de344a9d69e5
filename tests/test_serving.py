"""rlv2.serving: greedy actions from raw features, and the registered policy loaded for real.

The registry tests share one MLflow SQLite store (module scope) holding a hand-built
position-sizing Q-table and a meta-strategy one, both promoted to production.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from rlv2 import serving, tracking
from rlv2.actions import meta_space, sizing_space
from rlv2.domain import Model, Strategy, WeightAction
from rlv2.states import META_STATE_SPACE, SIZING_STATE_SPACE

SIZING_FEATURES = {
    "signal_confidence": 0.8,
    "portfolio_exposure": 0.3,
    "recent_winrate": 0.55,
    "volatility": 0.02,
    "equity_curve_slope": 0.0,
}
SIZING_STATE = int(SIZING_STATE_SPACE.encode(SIZING_FEATURES))
SIZING_BEST = int(sizing_space.encode(1.3, 5))
UNVISITED = {**SIZING_FEATURES, "signal_confidence": 0.1}

META_FEATURES = {
    "regime": "MEAN_REVERSION",
    "volatility": 0.005,
    "market_pressure": -0.5,
    "confidence": 0.9,
    "previous_winrate": 0.7,
    "account_health": 0.9,
}
META_STATE = int(META_STATE_SPACE.encode(META_FEATURES))
META_BEST = int(meta_space.encode(Strategy.RANGE, Model.PATCHTST, WeightAction.WEIGHT_DOWN))


def sizing_q() -> np.ndarray:
    """Sizing Q-table whose only visited state prefers size 1.3x at leverage 5."""
    q = np.zeros((SIZING_STATE_SPACE.n_states, sizing_space.n))
    q[SIZING_STATE, 0] = 1.0
    q[SIZING_STATE, SIZING_BEST] = 2.5
    return q


def meta_q() -> np.ndarray:
    """Meta Q-table whose only visited state prefers RANGE/PATCHTST/WEIGHT_DOWN."""
    q = np.zeros((META_STATE_SPACE.n_states, meta_space.n))
    q[META_STATE, META_BEST] = 0.75
    q[META_STATE, 1] = -0.5
    return q


# --- the plain function ---------------------------------------------------------------------


def test_greedy_actions_decodes_sizing() -> None:
    frame = pd.DataFrame([SIZING_FEATURES, UNVISITED])
    out = serving.greedy_actions(sizing_q(), SIZING_STATE_SPACE, "position_sizing", frame)
    assert list(out.columns) == ["state", "action", "size_multiplier", "leverage", "q_value"]
    assert list(out["state"]) == [SIZING_STATE, SIZING_STATE_SPACE.encode(UNVISITED)]
    assert list(out["action"]) == [SIZING_BEST, 0]
    assert list(out["size_multiplier"]) == [1.3, 0.2]
    assert list(out["leverage"]) == [5, 1]
    assert list(out["q_value"]) == [2.5, 0.0]


def test_greedy_actions_takes_regime_names_or_codes() -> None:
    frame = pd.DataFrame(
        [META_FEATURES, {**META_FEATURES, "regime": 3}, {**META_FEATURES, "regime": "TREND"}]
    )
    out = serving.greedy_actions(meta_q(), META_STATE_SPACE, "meta_strategy", frame)
    assert list(out["action"]) == [META_BEST, META_BEST, 0]
    assert list(out["strategy"]) == ["RANGE", "RANGE", "TREND"]
    assert list(out["model"]) == ["PATCHTST", "PATCHTST", "XGB"]
    assert list(out["weight_action"]) == ["WEIGHT_DOWN", "WEIGHT_DOWN", "WEIGHT_UP"]
    assert out["q_value"].iloc[0] == 0.75


def test_greedy_actions_names_what_is_wrong() -> None:
    frame = pd.DataFrame([SIZING_FEATURES]).drop(columns="recent_winrate")
    with pytest.raises(ValueError, match="recent_winrate"):
        serving.greedy_actions(sizing_q(), SIZING_STATE_SPACE, "position_sizing", frame)
    bad_regime = pd.DataFrame([{**META_FEATURES, "regime": "SIDEWAYS"}])
    with pytest.raises(ValueError, match="SIDEWAYS"):
        serving.greedy_actions(meta_q(), META_STATE_SPACE, "meta_strategy", bad_regime)
    with pytest.raises(ValueError, match="shape"):
        serving.greedy_actions(meta_q(), SIZING_STATE_SPACE, "position_sizing", frame)
    nan = pd.DataFrame([{**SIZING_FEATURES, "volatility": float("nan")}])
    with pytest.raises(ValueError, match="volatility"):
        serving.greedy_actions(sizing_q(), SIZING_STATE_SPACE, "position_sizing", nan)


# --- the registered policy ------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A store with both hand-built policies registered and promoted; yields its URI."""
    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root}/mlflow.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.delenv("MLFLOW_REGISTRY_URI", raising=False)
        tracking.configure()
        sizing = tracking.log_policy_model("position_sizing", sizing_q(), SIZING_STATE_SPACE)
        meta = tracking.log_policy_model("meta_strategy", meta_q(), META_STATE_SPACE)
        assert sizing is not None and meta is not None
        tracking.promote("position_sizing", sizing.version, {"reason": "test"}, expected=None)
        tracking.promote("meta_strategy", meta.version, {"reason": "test"}, expected=None)
        yield uri
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
        mlflow.set_registry_uri(None)  # type: ignore[arg-type]


def test_pyfunc_load_model_returns_the_greedy_action(registry: str) -> None:
    model = mlflow.pyfunc.load_model("models:/rlv2-position-sizing@production")
    out = model.predict(pd.DataFrame([SIZING_FEATURES, UNVISITED]))
    assert list(out["action"]) == [SIZING_BEST, 0]
    assert list(out["size_multiplier"]) == [1.3, 0.2]
    assert list(out["leverage"]) == [5, 1]
    assert out["q_value"].iloc[0] == 2.5
    assert out["state"].iloc[0] == SIZING_STATE


def test_load_policy_predicts_and_acts(registry: str) -> None:
    policy = serving.load_policy(tracking_uri=registry)
    assert policy.model_uri == "models:/rlv2-position-sizing@production"
    assert policy.act(SIZING_FEATURES) == SIZING_BEST
    assert policy.act({**SIZING_FEATURES, "equity_curve_slope": 0, "volatility": 1}) == 0
    out = policy.predict(pd.DataFrame([SIZING_FEATURES]))
    assert (out["size_multiplier"].iloc[0], out["leverage"].iloc[0]) == (1.3, 5)
    with pytest.raises(Exception, match="recent_winrate"):
        policy.act({k: v for k, v in SIZING_FEATURES.items() if k != "recent_winrate"})


def test_meta_policy_takes_regime_names_and_codes(registry: str) -> None:
    policy = serving.load_policy("meta_strategy")
    assert policy.act(META_FEATURES) == META_BEST
    assert policy.act({**META_FEATURES, "regime": 3}) == META_BEST
    out = policy.predict(pd.DataFrame([META_FEATURES]))
    assert out[["strategy", "model", "weight_action"]].iloc[0].tolist() == [
        "RANGE",
        "PATCHTST",
        "WEIGHT_DOWN",
    ]


# --- `mlflow models serve` ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=2) as response:
        return int(response.status)


@pytest.fixture(scope="module")
def server(registry: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow models serve` of the production sizing policy; yields its base URL."""
    bin_dir = Path(sys.executable).parent
    port = _free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": registry,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    log_path = tmp_path_factory.mktemp("server") / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                str(bin_dir / "mlflow"),
                "models",
                "serve",
                "-m",
                "models:/rlv2-position-sizing@production",
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60.0
        while True:
            if process.poll() is not None:
                pytest.fail(f"mlflow models serve exited:\n{log_path.read_text()}")
            try:
                if _get(f"{url}/ping") == 200:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow models serve not up in 60 s:\n{log_path.read_text()}")
            time.sleep(0.25)
        yield url
    finally:
        # the server execs uvicorn in its own session: end that whole process group
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(timeout=5)


@pytest.mark.server
def test_mlflow_models_serve_answers_invocations(server: str) -> None:
    frame = pd.DataFrame([SIZING_FEATURES, UNVISITED])
    body = json.dumps({"dataframe_split": frame.to_dict(orient="split")}).encode()
    request = urllib.request.Request(
        f"{server}/invocations", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        predictions = json.loads(response.read())["predictions"]
    assert [p["action"] for p in predictions] == [SIZING_BEST, 0]
    assert [(p["size_multiplier"], p["leverage"]) for p in predictions] == [(1.3, 5), (0.2, 1)]
    assert predictions[0]["q_value"] == 2.5
