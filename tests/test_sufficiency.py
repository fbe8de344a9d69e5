"""rlv2.sufficiency: a run that has nothing to learn from, or too little to judge on, registers
nothing and exits 1 with a clear message; bad settings stop it before any data loads."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from rlv2 import cli, store, tracking
from rlv2.domain import Agent
from rlv2.pipeline import AgentTraining, TrainConfig
from rlv2.replay import ReplayConfig
from rlv2.sufficiency import NotEnoughEvidence, check_trained


@pytest.fixture
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    yield uri
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    mlflow.set_registry_uri(None)  # type: ignore[arg-type]


def history(demo_db: Path, folder: Path, *statements: str) -> str:
    """A copy of the demo history with ``statements`` applied."""
    path = folder / "history.duckdb"
    shutil.copy(demo_db, path)
    with store.connect(path) as con:
        for statement in statements:
            con.execute(statement)
    return str(path)


def registered_versions() -> int:
    return len(MlflowClient().search_model_versions(""))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--alpha", "1.5"], "alpha=1.5 must be in (0, 1]"),
        (["--gamma", "-0.1"], "gamma=-0.1 must be in [0, 1]"),
        (["--epsilon-decay", "0"], "epsilon_decay=0.0 must be in (0, 1]"),
        (["--seed", "-1"], "seed=-1 out of range"),
        (["--n-boot", "0"], "n_boot=0 must be >= 1"),
        (["--confidence", "1"], "confidence=1.0 must be in (0, 1)"),
        (["--min-holdout-trades", "0"], "min_holdout_trades=0 must be >= 1"),
        (["--min-visited-states", "0"], "min_visited_states=0 must be >= 1"),
    ],
)
def test_bad_settings_stop_before_any_data_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    started = time.monotonic()
    missing = str(tmp_path / "never-read.duckdb")
    assert cli.main(["train", "--db", missing, *options]) == cli.EXIT_USAGE
    assert message in capsys.readouterr().err
    assert time.monotonic() - started < 5.0


def test_a_db_that_is_not_a_local_file_is_refused(
    mlflow_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for db in ("md:shared", "s3://bucket/h.duckdb", "https://example.com/h.duckdb", ":memory:"):
        assert cli.main(["train", "--db", db]) == cli.EXIT_FAILURE
        assert "must be a local file path" in capsys.readouterr().err
        assert cli.main(["ingest", "--db", db, "x.csv", "--table", "candles"]) == 1
        assert "must be a local file path" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize(
    ("statements", "options", "message"),
    [
        (["DELETE FROM positions", "DELETE FROM trades"], [], "no traded decision"),
        (["DELETE FROM positions"], [], "no traded decision"),
        (
            ["DELETE FROM policy", "INSERT INTO policy VALUES ('1900-01-01', false)"],
            [],
            "no traded decision",
        ),
        ([], ["--holdout-fraction", "0.999"], "1 distinct states, fewer than min_visited"),
        ([], ["--holdout-fraction", "0.001"], "fewer than min_holdout_trades=30"),
        ([], ["--min-visited-states", "100000"], "fewer than min_visited_states=100000"),
    ],
    ids=["no-trades", "no-closes", "rl-off", "tiny-training", "tiny-holdout", "few-states"],
)
def test_nothing_to_learn_from_registers_nothing_and_exits_1(
    demo_db: Path,
    tmp_path: Path,
    mlflow_store: str,
    prefect_harness: None,
    capsys: pytest.CaptureFixture[str],
    statements: list[str],
    options: list[str],
    message: str,
) -> None:
    db = history(demo_db, tmp_path, *statements)
    # in this process, on the session's Prefect API: a subprocess would start its own
    # server each time (the quiet CLI's terminal output is test_cli_output's subject)
    assert cli.main(["train", "--db", db, *options]) == cli.EXIT_FAILURE
    stderr = capsys.readouterr().err
    errors = [line for line in stderr.splitlines() if line.startswith("rlv2 train: error")]
    assert len(errors) == 1 and message in errors[0], stderr  # one line says why
    assert "nothing registered" in errors[0]
    tracking.configure()
    assert registered_versions() == 0


def test_check_trained_names_the_agent_and_the_count() -> None:
    config = TrainConfig(min_visited_states=3)
    q = np.zeros((243, 56))
    empty = AgentTraining(Agent.POSITION_SIZING, q, [], 0, 0)
    with pytest.raises(NotEnoughEvidence, match="position_sizing: 0 training events"):
        check_trained([empty], config)
    thin = AgentTraining(Agent.POSITION_SIZING, q, [], 40, 2)
    with pytest.raises(NotEnoughEvidence, match="40 training events in 2 distinct states"):
        check_trained([thin], config)
    check_trained([AgentTraining(Agent.POSITION_SIZING, q, [], 40, 3)], config)


def test_replay_settings_are_checked_when_made() -> None:
    with pytest.raises(ValueError, match="alpha=0.0 must be in"):
        ReplayConfig(alpha=0.0)
    with pytest.raises(ValueError, match="epsilon=nan"):
        ReplayConfig(epsilon=float("nan"))
    with pytest.raises(ValueError, match="margin=inf"):
        TrainConfig(margin=float("inf"))
