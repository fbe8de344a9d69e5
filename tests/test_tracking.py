"""rlv2.tracking against a real MLflow SQLite store in tmp_path: runs, artifacts, registry."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from rlv2 import tracking
from rlv2.actions import meta_space, sizing_space
from rlv2.domain import Model, Strategy, WeightAction
from rlv2.states import META_STATE_SPACE, SIZING_STATE_SPACE


@pytest.fixture
def store(mlflow_sqlite: str) -> str:
    """The module's MLflow store: a fresh SQLite one (``conftest.mlflow_sqlite``)."""
    return mlflow_sqlite


def sizing_q(best_action: int, state: int = 7, value: float = 2.0) -> np.ndarray:
    """A sizing Q-table, zero except one state whose argmax is ``best_action``."""
    q = np.zeros((SIZING_STATE_SPACE.n_states, sizing_space.n))
    q[state, 0] = 0.5
    q[state, best_action] = value
    return q


def test_tracking_uri_defaults_to_sqlite_in_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere/x.db")
    assert tracking.tracking_uri() == "sqlite:////elsewhere/x.db"


def test_configure_creates_experiments_with_artifacts_beside_the_db(
    store: str, tmp_path: Path
) -> None:
    client = MlflowClient()
    for name in (tracking.EXPERIMENT, tracking.PROMOTION_EXPERIMENT):
        experiment = client.get_experiment_by_name(name)
        assert experiment is not None
        assert experiment.artifact_location == (tmp_path / "mlartifacts" / name).as_uri()
    assert tracking.configure(store) == store  # idempotent


def test_flatten_params_nests_stringifies_and_cuts() -> None:
    flat = tracking.flatten_params(
        {
            "alpha": 0.01,
            "edges": {"volatility": (0.01, 0.03)},
            "strategy": Strategy.TREND,
            "n": np.int64(3),
            "flag": True,
            "long": "x" * 7000,
        }
    )
    assert flat["alpha"] == "0.01"
    assert flat["edges.volatility"] == "[0.01, 0.03]"
    assert flat["strategy"] == "TREND"
    assert flat["n"] == "3"
    assert flat["flag"] == "True"
    assert len(flat["long"]) == tracking.MAX_PARAM_LENGTH
    assert flat["long"].endswith("...[7000 chars]")


def test_provenance_fingerprints_the_db(tmp_path: Path) -> None:
    db = tmp_path / "history.duckdb"
    db.write_bytes(b"rlv2 history")
    found = tracking.provenance(db)
    assert found["db"]["fingerprint"] == hashlib.sha256(b"rlv2 history").hexdigest()
    assert found["db"]["fingerprint_method"] == "sha256"
    assert found["db"]["size_bytes"] == len(b"rlv2 history")
    assert found["git"]["commit"]  # a hash, or "unknown" outside a repository
    assert {"python", "rlv2", "numpy", "mlflow"} <= set(found["versions"])
    with pytest.raises(FileNotFoundError, match="missing.duckdb"):
        tracking.provenance(tmp_path / "missing.duckdb")


def test_run_logs_params_curves_and_q_table_artifacts(store: str, tmp_path: Path) -> None:
    db = tmp_path / "history.duckdb"
    db.write_bytes(b"bytes")
    n_episodes = 2500
    rewards = np.linspace(-1.0, 1.0, n_episodes)
    q = np.zeros((META_STATE_SPACE.n_states, meta_space.n))
    state = int(
        META_STATE_SPACE.encode(
            {
                "regime": "BREAKOUT",
                "volatility": 0.02,
                "market_pressure": 0.5,
                "confidence": 0.8,
                "previous_winrate": 0.5,
                "account_health": 0.99,
            }
        )
    )
    best = int(meta_space.encode(Strategy.BREAKOUT, Model.NHITS, WeightAction.WEIGHT_UP))
    q[state, best] = 1.5
    q[state, 0] = -0.25
    config = {"alpha": 0.01, "gamma": 0.99, "edges": {"volatility": [0.01, 0.03]}}
    params = {**config, "provenance": tracking.provenance(db)}

    with tracking.start_run("nightly", params, tags={"kind": "nightly"}) as run:
        tracking.log_curves(
            "meta_strategy",
            episode_reward=rewards,
            epsilon=np.full(n_episodes, 0.1),
            mean_abs_td=np.abs(rewards),
        )
        tracking.log_q_table("meta_strategy", q, META_STATE_SPACE)
        tracking.log_config(config)

    client = MlflowClient()
    logged = client.get_run(run.info.run_id)
    assert logged.info.status == "FINISHED"
    assert logged.data.params["edges.volatility"] == "[0.01, 0.03]"
    assert logged.data.params["provenance.db.fingerprint_method"] == "sha256"
    assert logged.data.tags["kind"] == "nightly"
    history = client.get_metric_history(run.info.run_id, "meta_strategy.episode_reward")
    assert len(history) == n_episodes
    assert sorted(m.step for m in history) == list(range(n_episodes))
    assert {m.step: m.value for m in history}[n_episodes - 1] == pytest.approx(1.0)

    files = {f.path for f in client.list_artifacts(run.info.run_id, "q_tables")}
    assert files == {"q_tables/meta_strategy.npy", "q_tables/meta_strategy.csv"}
    local = Path(client.download_artifacts(run.info.run_id, "q_tables"))
    np.testing.assert_array_equal(np.load(local / "meta_strategy.npy"), q)
    table = pd.read_csv(local / "meta_strategy.csv")
    labels = meta_space.labels()
    assert list(table.columns[:10]) == [
        "state",
        *META_STATE_SPACE.feature_names,
        "greedy_action",
        "greedy_label",
        "max_q",
    ]
    assert list(table.columns[10:]) == labels
    assert len(table) == 1  # one visited state
    row = table.iloc[0]
    assert row["state"] == state
    assert row["regime"] == "regime=BREAKOUT"
    assert row["volatility"] == "0.01<=volatility<0.03"
    assert row["greedy_action"] == best
    assert row["greedy_label"] == "BREAKOUT/NHITS/WEIGHT_UP"
    assert row["max_q"] == 1.5
    assert row[labels[0]] == -0.25
    config_path = client.download_artifacts(run.info.run_id, "config.json")
    assert json.loads(Path(config_path).read_text()) == config


def test_failed_body_marks_the_run_failed(store: str) -> None:
    with pytest.raises(KeyError), tracking.start_run("broken", {"alpha": 0.01}) as run:
        raise KeyError("boom")
    assert MlflowClient().get_run(run.info.run_id).info.status == "FAILED"


def test_logging_needs_an_active_run(store: str) -> None:
    with pytest.raises(RuntimeError, match="active run"):
        tracking.log_curves("meta_strategy", episode_reward=[1.0])


def test_log_policy_model_is_idempotent(store: str) -> None:
    first = tracking.log_policy_model("position_sizing", sizing_q(10), SIZING_STATE_SPACE)
    assert first is not None and first.version == 1
    assert first.tags["q_sha256"] == tracking.q_sha256(sizing_q(10), SIZING_STATE_SPACE)
    assert first.tags["run_id"] == first.run_id

    again = tracking.log_policy_model("position_sizing", sizing_q(10), SIZING_STATE_SPACE)
    assert again is not None and again.version == 1

    other = tracking.log_policy_model("position_sizing", sizing_q(11), SIZING_STATE_SPACE)
    assert other is not None and other.version == 2
    versions = MlflowClient().search_model_versions("name = 'rlv2-position-sizing'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    assert (
        tracking.log_policy_model(
            "position_sizing", sizing_q(12), SIZING_STATE_SPACE, registered=False
        )
        is None
    )


def test_a_rerun_adds_only_the_tags_a_registered_version_lacks(store: str) -> None:
    first = tracking.log_policy_model("position_sizing", sizing_q(10), SIZING_STATE_SPACE)
    assert first is not None and "holdout_start" not in first.tags  # an old registry's
    windows = {"holdout_start": "2020-10-01 00:00:00", "learner": "q-learning"}
    again = tracking.log_policy_model(
        "position_sizing", sizing_q(10), SIZING_STATE_SPACE, tags=windows
    )
    assert again is not None and again.version == first.version
    assert tracking.version_tags("position_sizing", 1).items() >= windows.items()
    other = {"holdout_start": "2021-01-01 00:00:00", "learner": "full-information"}
    tracking.log_policy_model("position_sizing", sizing_q(10), SIZING_STATE_SPACE, tags=other)
    assert tracking.version_tags("position_sizing", 1).items() >= windows.items()  # kept
    with pytest.raises(ValueError, match="no version 9"):
        tracking.version_tags("position_sizing", 9)


def test_promote_rollback_log_and_status(store: str) -> None:
    agent = "position_sizing"
    v1 = tracking.log_policy_model(agent, sizing_q(10), SIZING_STATE_SPACE)
    v2 = tracking.log_policy_model(agent, sizing_q(20), SIZING_STATE_SPACE)
    assert v1 is not None and v2 is not None
    assert tracking.production_version(agent) is None
    assert tracking.load_q_table(agent) is None

    tracking.promote(agent, v1.version, {"reason": "first production version"}, expected=None)
    production = tracking.production_version(agent)
    assert production is not None and production.version == 1

    figures = {
        "metric": "mean_reward",
        "candidate": 0.42,
        "champion": 0.30,
        "metric_diff": 0.12,
        "ci_low": 0.05,
        "ci_high": 0.19,
        "margin": 0.0,
        "n": 400,
        "reason": "CI above margin",
    }
    tracking.promote(agent, v2.version, figures, expected=v1.version)
    client = MlflowClient()
    assert client.get_model_version_by_alias("rlv2-position-sizing", "production").version == 2
    assert client.get_model_version_by_alias("rlv2-position-sizing", "previous").version == 1
    tagged = client.get_model_version("rlv2-position-sizing", "2").tags
    promotion_tags = [k for k in tagged if k.startswith("promotion.")]
    # a handful for machines, the verdict and its reason first; the figures are in the log
    assert promotion_tags == [f"promotion.{k}" for k in tracking.PROMOTION_TAGS]
    assert promotion_tags == sorted(promotion_tags)
    assert tagged["promotion.decision"] == "promoted"
    assert tagged["promotion.reason"] == "CI above margin"
    assert tagged["promotion.versus"] == "production v1"
    entry = client.get_run(tagged["promotion.run_id"])
    assert entry.data.params["metric_diff"] == "0.12"

    warm = tracking.load_q_table(agent)
    assert warm is not None
    np.testing.assert_array_equal(warm[0], sizing_q(20))
    assert warm[1] == SIZING_STATE_SPACE

    assert tracking.promote(agent, v2.version, figures, expected=v1.version) == "already"
    # a rerun changes nothing
    assert len(tracking.promotion_log(agent)) == 2

    v3 = tracking.log_policy_model(agent, sizing_q(30), SIZING_STATE_SPACE)
    assert v3 is not None
    refused = {**figures, "decision": "refused", "ci_low": -0.02, "reason": "CI crosses margin"}
    log_run = tracking.record_decision(agent, v3.version, refused)
    v3_tags = client.get_model_version("rlv2-position-sizing", "3").tags
    assert v3_tags["promotion.decision"] == "refused" and v3_tags["promotion.run_id"] == log_run
    assert client.get_run(log_run).data.params["ci_low"] == "-0.02"
    assert tracking.decisions_of(agent, v3.version)[0]["ci_low"] == pytest.approx(-0.02)

    [before] = [row for row in tracking.status() if row["agent"] == agent]
    assert before["production_version"] == 2
    assert before["previous_version"] == 1
    assert before["run_id"] == v2.run_id
    assert float(before["figures"]["ci_low"]) == 0.05  # from the decision that promoted v2

    restored = tracking.rollback(agent, reason="live drawdown")
    assert restored.version == 1
    assert client.get_model_version_by_alias("rlv2-position-sizing", "production").version == 1
    assert tracking.production_version(agent).version == 1  # type: ignore[union-attr]
    assert tracking.status()[1]["previous_version"] is None
    assert "rolled_back_at" in client.get_model_version("rlv2-position-sizing", "2").tags
    with pytest.raises(ValueError, match="no 'previous' version"):
        tracking.rollback(agent)

    log = tracking.promotion_log(agent)
    assert list(log["decision"]) == ["rolled_back", "refused", "promoted", "promoted"]
    assert list(log["version"]) == [1, 3, 2, 1]
    promoted = log.iloc[2]
    assert promoted["metric"] == "mean_reward"
    assert promoted["metric_diff"] == pytest.approx(0.12)
    assert promoted["n"] == 400
    assert log.iloc[0]["rolled_back_version"] == 2
    assert tracking.promotion_log("meta_strategy").empty
    assert len(tracking.promotion_log(limit=2)) == 2

    [after] = [row for row in tracking.status() if row["agent"] == agent]
    assert after["production_version"] == 1
    assert pd.Timestamp(after["since"]) == log.iloc[0]["timestamp"]  # the rollback's time
    assert after["figures"]["decision"] == "promoted"
    assert after["figures"]["reason"] == "first production version"
    meta = tracking.status()[0]
    assert meta["agent"] == "meta_strategy" and meta["production_version"] is None


def test_promote_unknown_version_names_it(store: str) -> None:
    tracking.log_policy_model("position_sizing", sizing_q(10), SIZING_STATE_SPACE)
    with pytest.raises(ValueError, match="no version 7"):
        tracking.promote("position_sizing", 7, {}, expected=None)
    with pytest.raises(ValueError, match="agent=.*expected one of"):
        tracking.production_version("sizing")


def test_interrupted_promotion_and_rollback_complete_on_rerun(store: str) -> None:
    agent, name = "position_sizing", "rlv2-position-sizing"
    client = MlflowClient()
    for best in (10, 20):
        tracking.log_policy_model(agent, sizing_q(best), SIZING_STATE_SPACE)
    tracking.promote(agent, 1, {"reason": "first"}, expected=None)

    # promote(2) stopped after its first step: production still on the complete v1
    client.set_registered_model_alias(name, "previous", "1")
    assert tracking.production_version(agent).version == 1  # type: ignore[union-attr]
    tracking.promote(agent, 2, {"reason": "rerun"}, expected=1)
    assert client.get_model_version_by_alias(name, "production").version == 2
    assert client.get_model_version_by_alias(name, "previous").version == 1

    # promote(3) stopped after its second step, before the promotion log
    tracking.log_policy_model(agent, sizing_q(30), SIZING_STATE_SPACE)
    client.set_registered_model_alias(name, "previous", "2")
    client.set_registered_model_alias(name, "production", "3")
    tracking.promote(agent, 3, {"reason": "rerun"}, expected=2)
    log = tracking.promotion_log(agent)
    assert list(log["version"]) == [3, 2, 1]
    assert log.iloc[0]["champion_version"] == 2

    # rollback stopped after moving production, before dropping previous
    client.set_registered_model_alias(name, "production", "2")
    tracking.rollback(agent)
    assert tracking.production_version(agent).version == 2  # type: ignore[union-attr]
    assert "rolled_back_at" not in client.get_model_version(name, "2").tags
    assert tracking.status()[1]["previous_version"] is None


# --- a store that cannot be used fails fast, in one line ----------------------------------


def _rlv2(args: list[str], uri: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    for key in tracking.HTTP_DEFAULTS:
        env.pop(key, None)
    return subprocess.run(
        [str(Path(sys.executable).with_name("rlv2")), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_sqlite_store_in_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/nowhere/mlflow.db"
    with pytest.raises(tracking.StoreUnavailable, match="folder .*nowhere does not exist"):
        tracking.configure(uri)
    done = _rlv2(["status"], uri, tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"rlv2 status: error: MLflow store {uri}: folder {tmp_path}/nowhere does not exist "
        "(create it, or fix MLFLOW_TRACKING_URI)"
    ]
    assert not (tmp_path / "nowhere").exists()


def test_a_dead_tracking_server_fails_within_seconds_naming_it(
    tmp_path: Path, demo_db: Path
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    uri = f"http://127.0.0.1:{port}"
    for args in (["status"], ["train", "--db", str(demo_db)]):
        started = time.monotonic()
        done = _rlv2(args, uri, tmp_path)
        assert time.monotonic() - started < 30
        assert done.returncode == 1
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"rlv2 {args[0]}: error: MLflow store {uri}")
