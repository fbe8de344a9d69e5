"""rlv2.serving: greedy actions from raw features, refusals of what it cannot answer, what
data stood behind each answer, and the registered policy loaded and served for real.

The registry tests share one MLflow SQLite store (module scope) holding a hand-built
position-sizing Q-table with its visit counts (full-information learner) and a
meta-strategy one logged without counts (as models were before they had them), both
promoted to production.
"""

from __future__ import annotations

import json
import os
import re
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
from mlflow.exceptions import MlflowException

from rlv2 import serving, tracking
from rlv2.actions import meta_space, sizing_space
from rlv2.coverage import Coverage
from rlv2.domain import Learner, Model, Strategy, WeightAction, agent_spec
from rlv2.full_information import full_information_q
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
"""Unvisited, in the visited state's exposure group: answered by that group."""
NO_GROUP = {**SIZING_FEATURES, "portfolio_exposure": 2.0}
"""Unvisited, in an exposure group without events: answered by the whole window."""
SIZING_VISITS = 40

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


def sizing_coverage() -> Coverage:
    """The sizing table's training: 40 events, all in its one visited state."""
    states = np.full(SIZING_VISITS, SIZING_STATE)
    levels = agent_spec("position_sizing").backoff_levels
    return Coverage.of_events(states, SIZING_STATE_SPACE.n_states, Learner.FULL_INFORMATION, levels)


def meta_q() -> np.ndarray:
    """Meta Q-table whose only visited state prefers RANGE/PATCHTST/WEIGHT_DOWN."""
    q = np.zeros((META_STATE_SPACE.n_states, meta_space.n))
    q[META_STATE, META_BEST] = 0.75
    q[META_STATE, 1] = -0.5
    return q


# --- the plain function ---------------------------------------------------------------------


COVERAGE_COLUMNS = ["visited", "visits", "fallback", "fallback_visits"]


def test_greedy_actions_decodes_sizing() -> None:
    frame = pd.DataFrame([SIZING_FEATURES, UNVISITED])
    out = serving.greedy_actions(sizing_q(), SIZING_STATE_SPACE, "position_sizing", frame)
    decoded = ["state", "action", "size_multiplier", "leverage", "q_value"]
    assert list(out.columns) == decoded + COVERAGE_COLUMNS
    assert list(out["state"]) == [SIZING_STATE, SIZING_STATE_SPACE.encode(UNVISITED)]
    assert list(out["action"]) == [SIZING_BEST, 0]
    assert list(out["size_multiplier"]) == [1.3, 0.2]
    assert list(out["leverage"]) == [5, 1]
    assert list(out["q_value"]) == [2.5, 0.0]
    # without visit counts nothing is claimed about the data behind an answer
    assert list(out["visited"]) == [None, None] and list(out["visits"]) == [None, None]
    assert list(out["fallback"]) == ["unknown", "unknown"]


def test_each_answer_says_what_data_stood_behind_it() -> None:
    answers = serving.CoverageAnswers.of(sizing_coverage(), SIZING_STATE_SPACE)
    frame = pd.DataFrame([SIZING_FEATURES, UNVISITED, NO_GROUP])
    out = serving.greedy_actions(sizing_q(), SIZING_STATE_SPACE, "position_sizing", frame, answers)
    assert list(out["visited"]) == [True, False, False]
    assert list(out["visits"]) == [SIZING_VISITS, 0, 0]
    assert list(out["fallback"]) == ["none", "portfolio_exposure", "global"]
    assert list(out["fallback_visits"]) == [SIZING_VISITS, SIZING_VISITS, SIZING_VISITS]
    # SPEC A4's learner leaves an unvisited row at its initial value
    q_learning = Coverage(sizing_coverage().visits, Learner.Q_LEARNING)
    plain = serving.CoverageAnswers.of(q_learning, SIZING_STATE_SPACE)
    out = serving.greedy_actions(sizing_q(), SIZING_STATE_SPACE, "position_sizing", frame, plain)
    assert list(out["fallback"]) == ["none", "initial", "initial"]
    assert list(out["fallback_visits"]) == [SIZING_VISITS, 0, 0]


def test_the_fallback_named_is_the_one_the_learner_used() -> None:
    """Unvisited states answered by one exposure group share that group's Q-row, those
    answered by the whole window the global row: the named fallback is what the table holds."""
    rng = np.random.default_rng(7)
    visited = SIZING_STATE_SPACE.encode(
        {
            **{k: np.full(3, v) for k, v in SIZING_FEATURES.items()},
            "recent_winrate": [0.1, 0.5, 0.9],
            "portfolio_exposure": [0.3, 0.3, 0.7],  # exposure groups 0 and 1; 2 has none
        }
    )
    states = np.repeat(np.asarray(visited), 50)
    rewards = rng.normal(size=(len(states), sizing_space.n))
    levels = agent_spec("position_sizing").backoff_levels
    q, counts, _ = full_information_q(states, rewards, SIZING_STATE_SPACE, levels, 3.0)
    coverage = Coverage.of_events(states, len(q), Learner.FULL_INFORMATION, levels)
    np.testing.assert_array_equal(coverage.visits, counts)
    fallback, behind = coverage.answers(SIZING_STATE_SPACE)
    exposure = SIZING_STATE_SPACE.decode(np.arange(len(q)))["portfolio_exposure"]
    group0 = (fallback == "portfolio_exposure") & (exposure == 0)
    answered_globally = fallback == "global"
    assert set(np.flatnonzero(answered_globally)) == set(np.flatnonzero(exposure == 2))
    for rows in (q[group0], q[answered_globally]):
        assert len(rows) > 1 and np.allclose(rows, rows[0])
    assert not np.allclose(q[group0][0], q[answered_globally][0])
    assert set(behind[group0]) == {100} and set(behind[answered_globally]) == {150}
    assert list(fallback[visited]) == ["none"] * 3 and list(behind[visited]) == [50] * 3


@pytest.mark.parametrize(
    ("column", "value", "said"),
    [
        ("signal_confidence", 7.5, "7.5 is outside [0, 1]"),
        ("portfolio_exposure", -3.0, "-3.0 is outside [0, inf]"),
        ("recent_winrate", 2.0, "2.0 is outside [0, 1]"),
        ("volatility", -0.01, "-0.01 is outside [0, inf]"),
        ("volatility", float("nan"), "nan is missing or NaN"),
        ("volatility", None, "None is missing or NaN"),
        ("equity_curve_slope", float("inf"), "inf is not finite"),
        ("signal_confidence", "high", "'high' is not a number"),
    ],
)
def test_an_input_outside_spec_a2_is_refused_naming_column_row_and_value(
    column: str, value: object, said: str
) -> None:
    frame = pd.DataFrame([SIZING_FEATURES, SIZING_FEATURES], dtype=object)
    frame.loc[1, column] = value
    with pytest.raises(serving.RefusedInput) as refused:
        serving.greedy_actions(sizing_q(), SIZING_STATE_SPACE, "position_sizing", frame)
    message = str(refused.value)
    assert f"column {column!r}, row 1: {said}" in message and "\n" not in message


@pytest.mark.parametrize(
    ("column", "value", "said"),
    [
        ("market_pressure", 1.5, "1.5 is outside [-1, 1]"),
        ("account_health", 1.2, "1.2 is outside [0, 1]"),
        ("confidence", -0.1, "-0.1 is outside [0, 1]"),
        ("regime", "SIDEWAYS", "'SIDEWAYS' is not one of TREND, RANGE"),
        ("regime", 7, "7 is not one of"),
        ("regime", 1.5, "1.5 is not one of"),
        ("regime", None, "None is not one of"),
    ],
)
def test_a_meta_input_outside_spec_a2_is_refused(column: str, value: object, said: str) -> None:
    frame = pd.DataFrame([META_FEATURES], dtype=object)
    frame.loc[0, column] = value
    with pytest.raises(serving.RefusedInput, match=re.escape(f"column '{column}', row 0: {said}")):
        serving.greedy_actions(meta_q(), META_STATE_SPACE, "meta_strategy", frame)


def test_the_bounds_of_each_range_are_answered() -> None:
    edges = [
        {**SIZING_FEATURES, "signal_confidence": 0.0, "recent_winrate": 1.0},
        {**SIZING_FEATURES, "portfolio_exposure": 0.0, "volatility": 0.0},
        {**SIZING_FEATURES, "portfolio_exposure": 40.0, "equity_curve_slope": -5.0},
    ]
    out = serving.greedy_actions(
        sizing_q(), SIZING_STATE_SPACE, "position_sizing", pd.DataFrame(edges)
    )
    assert len(out) == 3
    meta = [{**META_FEATURES, "regime": "trend", "market_pressure": -1.0, "account_health": 0.0}]
    out = serving.greedy_actions(meta_q(), META_STATE_SPACE, "meta_strategy", pd.DataFrame(meta))
    assert out["strategy"].iloc[0] == "TREND"


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
        sizing = tracking.log_policy_model(
            "position_sizing", sizing_q(), SIZING_STATE_SPACE, coverage=sizing_coverage()
        )
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
    assert list(out["visited"]) == [True, False]
    assert list(out["fallback"]) == ["none", "portfolio_exposure"]
    with pytest.raises(MlflowException, match="'portfolio_exposure', row 0: -3.0") as refused:
        model.predict(pd.DataFrame([{**SIZING_FEATURES, "portfolio_exposure": -3.0}]))
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"


def test_a_model_logged_without_visit_counts_still_loads(registry: str) -> None:
    policy = serving.load_policy("meta_strategy")
    assert policy.coverage is None
    out = policy.predict(pd.DataFrame([META_FEATURES]))
    assert out["action"].iloc[0] == META_BEST
    assert out["visited"].iloc[0] is None and out["fallback"].iloc[0] == "unknown"


def test_load_policy_predicts_and_acts(registry: str) -> None:
    policy = serving.load_policy(tracking_uri=registry)
    assert policy.model_uri == "models:/rlv2-position-sizing/1"
    assert (policy.version, policy.alias, policy.tracking_uri) == ("1", "production", registry)
    assert str(policy) == f"models:/rlv2-position-sizing/1 (alias production) from {registry}"
    assert policy.coverage is not None
    np.testing.assert_array_equal(policy.coverage.visits, sizing_coverage().visits)
    assert policy.act(SIZING_FEATURES) == SIZING_BEST
    assert policy.act({**SIZING_FEATURES, "equity_curve_slope": 0, "volatility": 1}) == 0
    out = policy.predict(pd.DataFrame([SIZING_FEATURES]))
    assert (out["size_multiplier"].iloc[0], out["leverage"].iloc[0]) == (1.3, 5)
    with pytest.raises(Exception, match="recent_winrate"):
        policy.act({k: v for k, v in SIZING_FEATURES.items() if k != "recent_winrate"})


def test_load_policy_names_the_registry_of_a_missing_alias(registry: str) -> None:
    with pytest.raises(ValueError, match=f"alias 'nightly' in the registry at {registry}$"):
        serving.load_policy("position_sizing", alias="nightly")


def test_load_policy_never_creates_a_store(registry: str, tmp_path: Path) -> None:
    missing = tmp_path / "elsewhere" / "mlflow.db"
    with pytest.raises(serving.StoreNotFound, match=f"sqlite:///{missing}: {missing} does not"):
        serving.load_policy(tracking_uri=f"sqlite:///{missing}")
    assert not missing.parent.exists()
    # a consumer started in another directory, with no MLFLOW_TRACKING_URI: MLflow's default
    # is ./mlflow.db, which it would create empty; load_policy refuses and creates nothing
    script = "from rlv2.serving import load_policy; load_policy()"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("rlv2.serving.StoreNotFound: no MLflow tracking store at sqlite:")
    assert f"{tmp_path}/mlflow.db does not exist" in last
    assert list(tmp_path.iterdir()) == []


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


def _invoke(server: str, frame: pd.DataFrame) -> tuple[int, dict]:
    """POST a frame to ``/invocations`` as ``dataframe_split``; the status and JSON body."""
    body = json.dumps({"dataframe_split": frame.to_dict(orient="split")}).encode()
    request = urllib.request.Request(
        f"{server}/invocations", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), json.loads(error.read())


@pytest.mark.server
def test_mlflow_models_serve_answers_invocations(server: str) -> None:
    status, answer = _invoke(server, pd.DataFrame([SIZING_FEATURES, UNVISITED, NO_GROUP]))
    assert status == 200, answer
    predictions = answer["predictions"]
    assert [p["action"] for p in predictions] == [SIZING_BEST, 0, 0]
    assert [(p["size_multiplier"], p["leverage"]) for p in predictions[:2]] == [(1.3, 5), (0.2, 1)]
    assert predictions[0]["q_value"] == 2.5
    assert [p["visited"] for p in predictions] == [True, False, False]
    assert [p["visits"] for p in predictions] == [SIZING_VISITS, 0, 0]
    assert [p["fallback"] for p in predictions] == ["none", "portfolio_exposure", "global"]
    assert [p["fallback_visits"] for p in predictions] == [SIZING_VISITS] * 3


@pytest.mark.server
@pytest.mark.parametrize(
    ("column", "value", "said"),
    [
        ("signal_confidence", 7.5, "7.5 is outside [0, 1]"),
        ("portfolio_exposure", -3.0, "-3.0 is outside [0, inf]"),
        ("recent_winrate", 2.0, "2.0 is outside [0, 1]"),
        ("volatility", float("nan"), "nan is missing or NaN"),
    ],
)
def test_mlflow_models_serve_refuses_what_it_cannot_answer(
    server: str, column: str, value: float, said: str
) -> None:
    frame = pd.DataFrame([SIZING_FEATURES, {**SIZING_FEATURES, column: value}])
    status, answer = _invoke(server, frame)
    assert status == 400, answer
    assert answer["error_code"] == "INVALID_PARAMETER_VALUE"
    # MLflow's scoring server puts "Failed to predict data '<the frame>'." before it: the
    # model's own one-line message is the body's last line
    last = answer["message"].splitlines()[-1]
    assert last.startswith(f"Error: position_sizing policy input: column {column!r}, row 1: ")
    assert f"row 1: {said}" in last and last.endswith("; refused")
    assert "stack_trace" not in answer and "Traceback" not in answer["message"]


@pytest.mark.server
def test_mlflow_models_serve_refuses_a_missing_column_or_text(server: str) -> None:
    """MLflow's schema check refuses these before the model runs: still a 400 naming them."""
    missing = pd.DataFrame([SIZING_FEATURES]).drop(columns="recent_winrate")
    status, answer = _invoke(server, missing)
    assert status == 400 and "recent_winrate" in answer["message"]
    text = pd.DataFrame([{**SIZING_FEATURES, "volatility": "high"}])
    status, answer = _invoke(server, text)
    assert status == 400 and "volatility" in answer["message"]
