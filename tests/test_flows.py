"""The flows for real: a Prefect run, a DuckDB history, an MLflow store, no mocks."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from rlv2 import cli, pipeline, tracking
from rlv2.qlearning import stream_seed
from rlv2.states import SIZING_STATE_SPACE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory):
    """An MLflow SQLite store for this module, set as MLFLOW_TRACKING_URI."""
    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder}/mlflow.db"
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ.pop("MLFLOW_REGISTRY_URI", None)
    tracking.configure()
    yield uri
    while mlflow.active_run() is not None:
        mlflow.end_run()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    mlflow.set_registry_uri(None)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def db(demo_db: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    copy = tmp_path_factory.mktemp("flows") / "history.duckdb"
    shutil.copy(demo_db, copy)
    return str(copy)


@pytest.fixture(scope="module")
def nightly(prefect_harness, mlflow_store, db):
    from rlv2.flows.nightly import nightly_retrain

    return nightly_retrain(db=db, epochs=3, seed=5)


def q_of(agent: str, version: str) -> np.ndarray:
    loaded = tracking.load_q_table(agent, version=version)
    assert loaded is not None
    return loaded[0]


def test_nightly_logs_a_complete_run(nightly, mlflow_store, db):
    client = MlflowClient()
    run = client.get_run(nightly["run_id"])
    params = run.data.params
    assert params["replay.alpha"] == "0.01" and params["replay.seed"] == "5"
    assert len(params["db.sha256"]) == 64 if "db.sha256" in params else params["db.fingerprint"]
    assert "git.commit" in params and "versions.numpy" in params
    assert params["holdout_start"] > params["train_start"]
    history = client.get_metric_history(run.info.run_id, "meta_strategy.episode_reward")
    episodes = 3 * int(float(params["train_trades"]))  # one per closed trade and epoch
    assert len(history) == min(episodes, pipeline.CURVE_POINTS)
    steps = [m.step for m in history]
    assert steps[0] == 0 and steps == sorted(steps) and steps[-1] < episodes
    assert "holdout.mean_pnl_pct" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "q_tables")}
    assert {"q_tables/meta_strategy.npy", "q_tables/position_sizing.csv"} <= artifacts
    assert set(nightly["versions"]) == {"meta_strategy", "position_sizing"}


def test_every_gate_decision_is_recorded(nightly):
    log = tracking.promotion_log()
    assert set(log["agent"]) == {"meta_strategy", "position_sizing"}
    for agent, decision in nightly["decisions"].items():
        assert decision["champion"] == "logged"  # nothing was in production
        version = MlflowClient().get_model_version(tracking.MODEL_NAMES[agent], decision["version"])
        assert version.tags["promotion.decision"] in {"promoted", "refused"}
        promoted = tracking.production_version(agent)
        assert (promoted is not None) == decision["promote"]


def test_rerun_gives_byte_identical_q_tables_and_no_duplicate(nightly, db):
    from rlv2.flows.nightly import nightly_retrain

    again = nightly_retrain(db=db, epochs=3, seed=5, promote=False)
    assert again["versions"] == nightly["versions"]  # same Q-table hash: same version
    for agent in ("meta_strategy", "position_sizing"):
        name = tracking.MODEL_NAMES[agent]
        assert len(MlflowClient().search_model_versions(f"name = '{name}'")) == 1
        assert q_of(agent, nightly["versions"][agent]).any()


def test_sweep_child_equals_single_run_with_its_configuration(nightly, db):
    from rlv2.flows.nightly import nightly_retrain
    from rlv2.flows.sweep import sweep

    out = sweep(
        db=db, agent="position_sizing", alpha=[0.05, 0.2], gamma=[0.9], epsilon=[0.2], epochs=3
    )
    result = out["position_sizing"]
    table = result["table"]
    assert len(table) == 2 and table["score"].is_monotonic_decreasing
    children = MlflowClient().search_runs(
        [MlflowClient().get_run(result["run_id"]).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{result['run_id']}'",
    )
    assert len(children) == 2
    best = result["best"]
    single = nightly_retrain(
        db=db,
        epochs=3,
        alpha=float(best["alpha"]),
        gamma=0.9,
        epsilon=0.2,
        seed=stream_seed(0, int(best["config_index"])),
        promote=False,
    )
    # identical Q-table bytes hash to the same registered version
    assert single["versions"]["position_sizing"] == result["version"]


def test_promote_gate_rollback_and_status_from_the_cli(nightly, db, capsys):
    assert cli.main(["promote", "--db", db, "--agent", "meta_strategy"]) == 0
    out = capsys.readouterr().out
    assert "meta_strategy v" in out and ("PROMOTED" in out or "refused" in out)
    # a second sizing version: the nightly's table, changed; promote both by hand, then
    # roll the second back through the CLI
    first = nightly["versions"]["position_sizing"]
    changed = q_of("position_sizing", first) + 1.0
    with tracking.start_run("second", params={}):
        second = tracking.log_policy_model("position_sizing", changed, SIZING_STATE_SPACE)
    tracking.promote("position_sizing", first, {"reason": "test"})
    tracking.promote("position_sizing", second.version, {"reason": "test"})
    assert cli.main(["rollback", "position_sizing", "--reason", "misbehaved"]) == 0
    assert f"production is now v{first}" in capsys.readouterr().out
    assert str(tracking.production_version("position_sizing").version) == first
    assert cli.main(["status", "--log"]) == 0
    out = capsys.readouterr().out
    assert f"position_sizing: production v{first} since" in out and "rolled_back" in out
    assert cli.main(["rollback", "position_sizing"]) == 1  # no previous any more
    assert "previous" in capsys.readouterr().err


def test_flow_fails_clearly_without_a_database(prefect_harness, mlflow_store, tmp_path):
    from rlv2.flows.nightly import nightly_retrain

    with pytest.raises(FileNotFoundError, match="not found"):
        nightly_retrain(db=str(tmp_path / "missing.duckdb"), epochs=1)


def test_sweep_on_a_dask_cluster_gives_the_threads_result(prefect_harness, mlflow_store, db):
    from rlv2.flows.sweep import sweep

    kwargs = {
        "db": db,
        "agent": "position_sizing",
        "alpha": [0.05, 0.2],
        "gamma": [0.9],
        "epsilon": [0.2],
        "epochs": 2,
        "register_best": False,
    }
    threads = sweep(**kwargs)["position_sizing"]["table"]
    dask = sweep(**kwargs, task_runner="dask")["position_sizing"]["table"]
    assert threads["score"].tolist() == dask["score"].tolist()
    assert threads["config_index"].tolist() == dask["config_index"].tolist()


def test_tpe_study_persists_and_a_rerun_resumes_it(prefect_harness, mlflow_store, db, tmp_path):
    import optuna

    from rlv2.flows.sweep import sweep

    storage = f"sqlite:///{tmp_path}/optuna.db"
    kwargs = {
        "db": db,
        "agent": "position_sizing",
        "method": "tpe",
        "n_trials": 2,
        "storage": storage,
        "study_name": "resume",
        "epochs": 2,
        "register_best": False,
    }
    first = sweep(**kwargs)["position_sizing"]["table"]
    assert len(first) == 2
    sweep(**kwargs)
    study = optuna.load_study(study_name="resume-position_sizing", storage=storage)
    assert len(study.trials) == 4  # the rerun added two trials to the stored two
