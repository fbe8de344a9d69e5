"""The flows for real: a Prefect run, a DuckDB history, an MLflow store, no mocks."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from rlv2 import cli, cli_pipeline, history, pipeline, store, tracking
from rlv2.domain import agent_spec
from rlv2.pipeline import TrainConfig
from rlv2.rng import stream_seed
from rlv2.states import META_STATE_SPACE, SIZING_STATE_SPACE
from rlv2.sweeps import SweepConfig

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


def config(epochs: int, learner: str = "full-information", **replay) -> TrainConfig:
    return TrainConfig(epochs=epochs, learner=learner).with_hyperparameters(**replay)


@pytest.fixture(scope="module")
def nightly(prefect_harness, mlflow_store, db):
    from rlv2.flows.nightly import nightly_retrain

    return nightly_retrain(db=db, config=config(3, seed=5))


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


def test_each_registered_version_records_its_learner(nightly):
    for agent, version in nightly["versions"].items():
        tags = MlflowClient().get_model_version(agent_spec(agent).model_name, version).tags
        assert tags["learner"] == "full-information"


def test_each_registered_version_carries_its_verified_visit_counts(nightly):
    run = MlflowClient().get_run(nightly["run_id"])
    for agent, version in nightly["versions"].items():
        spec = agent_spec(agent)
        tags = MlflowClient().get_model_version(spec.model_name, version).tags
        model = mlflow.pyfunc.load_model(f"models:/{spec.model_name}/{version}")
        coverage = model.unwrap_python_model().coverage
        assert coverage is not None and tags["visits_sha256"] == coverage.sha256()
        assert coverage.learner == "full-information"
        assert coverage.backoff_levels == spec.backoff_levels
        assert coverage.visits.sum() == run.data.metrics[f"{agent}.events_per_epoch"]


def test_the_run_and_its_versions_record_the_training_and_holdout_windows(nightly):
    run = MlflowClient().get_run(nightly["run_id"])
    split = nightly["split"]
    recorded = {k: run.data.tags[k] for k in pipeline.TrainingWindows._fields}
    assert recorded == {
        "train_start": str(split["train_start"]),
        "train_end": str(split["holdout_start"]),
        "holdout_start": str(split["holdout_start"]),
        "holdout_end": str(split["holdout_end"]),
    }
    assert recorded["holdout_start"] == run.data.params["holdout_start"]
    for agent, version in nightly["versions"].items():
        tags = tracking.version_tags(agent, version)
        assert {k: tags[k] for k in recorded} == recorded
    for decision in nightly["decisions"].values():  # the nightly gated on it
        assert (decision["holdout_start"], decision["holdout_end"]) == (
            recorded["holdout_start"],
            recorded["holdout_end"],
        )


def test_every_gate_decision_is_recorded(nightly):
    log = tracking.promotion_log()
    assert set(log["agent"]) == {"meta_strategy", "position_sizing"}
    for agent, decision in nightly["decisions"].items():
        assert decision["champion"] == "logged"  # nothing was in production
        version = MlflowClient().get_model_version(
            agent_spec(agent).model_name, decision["version"]
        )
        assert version.tags["promotion.decision"] in {"promoted", "refused"}
        promoted = tracking.production_version(agent)
        assert (promoted is not None) == decision["promote"]


def test_rerun_gives_byte_identical_q_tables_and_no_duplicate(nightly, db):
    from rlv2.flows.nightly import nightly_retrain

    again = nightly_retrain(db=db, config=config(3, seed=5), promote=False, figures=False)
    assert again["versions"] == nightly["versions"]  # same Q-table hash: same version
    for agent in ("meta_strategy", "position_sizing"):
        name = agent_spec(agent).model_name
        assert len(MlflowClient().search_model_versions(f"name = '{name}'")) == 1
        assert q_of(agent, nightly["versions"][agent]).any()


FIGURES = {
    "learning",
    "policy_meta_strategy",
    "policy_position_sizing",
    "q_values_meta_strategy",
    "q_values_position_sizing",
    "holdout_equity",
}


def test_nightly_logs_figures_one_holdout_table_and_few_metrics(nightly):
    client = MlflowClient()
    run = client.get_run(nightly["run_id"])
    pngs = {a.path for a in client.list_artifacts(nightly["run_id"], "figures")}
    assert pngs == {f"figures/{name}.png" for name in FIGURES}  # no production: no changes
    assert run.data.tags["agents"] == "meta_strategy,position_sizing"
    assert run.data.tags["learner"] == "full-information"
    assert run.data.tags["prefect.flow_run_name"].startswith("nightly-retrain-20")
    assert len(run.data.tags["prefect.flow_run_id"]) == 36
    for agent, version in nightly["versions"].items():
        assert run.data.tags[f"version.{agent}"] == version
    holdout = {k for k in run.data.metrics if k.startswith("holdout")}
    assert holdout == {f"holdout.{k}" for k in nightly_module().HOLDOUT_METRICS}
    table = tracking.run_artifacts(nightly["run_id"])["holdout_comparison.csv"].decode()
    header, *rows = table.splitlines()
    assert header == "metric,candidate,logged"
    assert len(rows) == len(nightly["holdout"])


def nightly_module():
    from rlv2.flows import nightly

    return nightly


def test_each_gated_version_explains_itself(nightly):
    from prefect.artifacts import Artifact

    client = MlflowClient()
    for agent, decision in nightly["decisions"].items():
        version = client.get_model_version(agent_spec(agent).model_name, decision["version"])
        promotion_tags = [k for k in version.tags if k.startswith("promotion.")]
        assert promotion_tags[:2] == ["promotion.decision", "promotion.reason"]
        assert len(promotion_tags) == len(tracking.PROMOTION_TAGS)
        text = version.description
        assert "### What trained it" in text and "learner: **full-information**" in text
        assert f"{agent} v{decision['version']}: {version.tags['promotion.decision']}" in text
        assert decision["reason"] in text and "interval" in text
        log_run = version.tags["promotion.run_id"]
        assert [a.path for a in client.list_artifacts(log_run, "figures")] == ["figures/gate.png"]
        assert client.get_run(log_run).data.tags["prefect.flow_run_id"]
        artifact = Artifact.get(f"gate-{agent.replace('_', '-')}")
        assert artifact is not None and decision["reason"] in str(artifact.data)


def test_the_nightly_report_opens_offline_with_every_image(nightly):
    from tests.headless_chromium import find_chromium, visit

    binary = find_chromium()
    if binary is None:
        pytest.skip("chromium not found: .ci/run installs Debian's chromium with apt-get")
    assert nightly["report"].startswith("file://")
    seen = visit(nightly["report"], binary)
    n_gate_figures = len(nightly["decisions"])
    assert len(seen.images) == len(FIGURES) + n_gate_figures
    for image in seen.images:
        assert image["complete"] and image["naturalWidth"] > 0 and image["naturalHeight"] > 0
    assert seen.requests[0] == nightly["report"]
    left = [u for u in seen.requests if not u.startswith(("file:", "data:"))]
    assert left == [], "requests that left the machine"
    assert seen.title == "rlv2 run nightly-retrain"


def test_rlv2_report_writes_the_run_report(nightly, tmp_path, capsys):
    path = tmp_path / "report.html"
    assert cli.main(["report", nightly["run_id"], "-o", str(path)]) == 0
    page = path.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("data:image/png;base64,") == 8
    assert "Data window" in page and nightly["decisions"]["meta_strategy"]["reason"] in page
    assert cli.main(["report", "no-such-run"]) == cli.EXIT_FAILURE
    assert "'no-such-run' not found" in capsys.readouterr().err


def test_a_refused_candidate_ends_the_flow_refused_and_exits_3(nightly, db, capsys):
    from prefect import get_client

    from rlv2.flows.promote import promote

    first = nightly["versions"]["position_sizing"]
    recorded = tracking.version_tags("position_sizing", first)  # its windows: its holdout
    windows = pipeline.TrainingWindows.from_tags(recorded, f"v{first}").tags()
    with tracking.start_run("refused", params={}):
        candidate = tracking.log_policy_model(
            "position_sizing",
            q_of("position_sizing", first) + 2.0,
            SIZING_STATE_SPACE,
            tags=windows,
        )
    version = str(candidate.version)
    never = TrainConfig(margin=1e6)  # no candidate beats anything by a million
    state = promote(
        agent="position_sizing", version=version, db=db, config=never, return_state=True
    )
    assert state.is_completed() and state.name == "Refused"
    assert state.result()["position_sizing"]["promote"] is False
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert run.name == f"promote-position_sizing-v{version}"
    argv = ["promote", "--db", db, "--agent", "position_sizing", "--version", version]
    assert cli.main([*argv, "--margin", "1000000"]) == cli_pipeline.EXIT_REFUSED
    assert "refused: position_sizing (exit 3)" in capsys.readouterr().out
    tags = MlflowClient().get_model_version("rlv2-position-sizing", version).tags
    assert tags["promotion.decision"] == "refused"


def test_sweep_child_equals_single_run_with_its_configuration(nightly, db):
    from rlv2.flows.nightly import nightly_retrain
    from rlv2.flows.sweep import sweep

    search = SweepConfig(alpha=(0.05, 0.2), gamma=(0.9,), epsilon=(0.2,))
    out = sweep(db=db, config=config(3), search=search, agent="position_sizing")
    result = out["position_sizing"]
    table = result["table"]
    assert len(table) == 2 and table["score"].is_monotonic_decreasing
    children = MlflowClient().search_runs(
        [MlflowClient().get_run(result["run_id"]).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{result['run_id']}'",
    )
    assert len(children) == 2
    charts = {a.path for a in MlflowClient().list_artifacts(result["run_id"], "figures")}
    assert charts == {"figures/sweep_scores.png", "figures/sweep_learning.png"}
    from prefect.artifacts import Artifact

    published = Artifact.get("sweep-position-sizing")
    assert published is not None and "score" in str(published.data)
    best = result["best"]
    assert float(best["alpha"]) in (0.05, 0.2) and best["meta_weights"] == "0.5,0.2,0.15"
    single = nightly_retrain(
        db=db,
        config=config(
            3,
            learner="q-learning",  # a sweep's trials train SPEC A4's learner
            alpha=float(best["alpha"]),
            gamma=0.9,
            epsilon=0.2,
            seed=stream_seed(0, int(best["config_index"])),
        ),
        promote=False,
        figures=False,
    )
    # identical Q-table bytes hash to the same registered version
    assert single["versions"]["position_sizing"] == result["version"]
    # the sweep's parent run and its registered best record the windows, as a nightly does
    parent = MlflowClient().get_run(result["run_id"]).data.tags
    version = tracking.version_tags("position_sizing", result["version"])
    windows = pipeline.TrainingWindows.of_split(pipeline.Split(**single["split"])).tags()
    for name, value in windows.items():
        assert version[name] == parent[name] == value


def test_promote_gate_rollback_and_status_from_the_cli(nightly, db, capsys):
    code = cli.main(["promote", "--db", db, "--agent", "meta_strategy"])
    out = capsys.readouterr().out
    assert "meta_strategy v" in out and ("PROMOTED" in out or "refused" in out)
    assert code == (cli_pipeline.EXIT_REFUSED if "refused" in out else 0)
    # a second sizing version: the nightly's table, changed; promote both by hand, then
    # roll the second back through the CLI
    first = nightly["versions"]["position_sizing"]
    changed = q_of("position_sizing", first) + 1.0
    with tracking.start_run("second", params={}):
        second = tracking.log_policy_model("position_sizing", changed, SIZING_STATE_SPACE)
    current = tracking.production_version("position_sizing")
    expected = None if current is None else current.version
    tracking.promote("position_sizing", first, {"reason": "test"}, expected=expected)
    tracking.promote("position_sizing", second.version, {"reason": "test"}, expected=first)
    assert cli.main(["rollback", "position_sizing", "--reason", "misbehaved"]) == 0
    assert f"production is now v{first}" in capsys.readouterr().out
    assert str(tracking.production_version("position_sizing").version) == first
    assert cli.main(["status", "--log"]) == 0
    out = capsys.readouterr().out
    assert f"position_sizing: production v{first} since" in out and "rolled_back" in out
    assert "promotion log, newest first" in out and "Timestamp(" not in out  # lines, no reprs
    assert cli.main(["rollback", "position_sizing"]) == 1  # no previous any more
    assert "previous" in capsys.readouterr().err


def test_promote_gates_a_version_on_the_holdout_its_run_recorded(nightly, db, capsys):
    from rlv2.flows.nightly import nightly_retrain
    from rlv2.flows.promote import promote

    # a candidate of its own, trained at the default holdout fraction 0.2, not yet gated
    trained = nightly_retrain(db=db, config=config(1, learner="q-learning", seed=21), promote=False)
    version = trained["versions"]["position_sizing"]
    recorded = MlflowClient().get_run(trained["run_id"]).data.tags
    name = agent_spec("position_sizing").model_name
    argv = ["promote", "--db", db, "--agent", "position_sizing", "--version", version]
    assert cli.main([*argv, "--holdout-fraction", "0.5"]) == cli.EXIT_FAILURE
    (line,) = [x for x in capsys.readouterr().err.splitlines() if x.startswith("rlv2 promote")]
    with store.connect(db, read_only=True) as con:
        requested = history.holdout_start(con, 0.5)
    assert line == (
        f"rlv2 promote: error: {name} v{version} was trained on {recorded['train_start']} .. "
        f"{recorded['train_end']}; the requested holdout (holdout_fraction=0.5) from "
        f"{requested} overlaps it: refused (without it the gate uses the recorded holdout "
        f"from {recorded['holdout_start']})"
    )
    tags = tracking.version_tags("position_sizing", version)
    assert not any(k.startswith("promotion.") for k in tags)  # refused before any gate
    # without the request, the gate takes the recorded holdout, whatever the settings say
    decisions = promote(
        agent="position_sizing",
        version=version,
        db=db,
        config=TrainConfig(holdout_fraction=0.5),
    )
    decision = decisions["position_sizing"]
    assert decision["holdout_start"] == recorded["holdout_start"]
    assert decision["holdout_end"] == recorded["holdout_end"]
    assert "ips.snips" not in decision  # the demo logs no per-agent propensities
    (latest, *_) = tracking.decisions_of("position_sizing", version)  # the promotion log
    assert latest["holdout_start"] == recorded["holdout_start"]
    # a request that keeps out of the training window is accepted and changes nothing
    again = promote(agent="position_sizing", version=version, db=db, holdout_fraction=0.1)
    if again["position_sizing"]["reason"] != "already":
        assert again["position_sizing"]["holdout_start"] == recorded["holdout_start"]


def test_promote_names_a_version_registered_before_windows_were_recorded(nightly, db):
    from rlv2.flows.promote import promote

    changed = q_of("meta_strategy", nightly["versions"]["meta_strategy"]) + 2.0
    with tracking.start_run("old registry", params={}):
        old = tracking.log_policy_model("meta_strategy", changed, META_STATE_SPACE)
    assert "holdout_start" not in old.tags
    name = agent_spec("meta_strategy").model_name
    with pytest.raises(ValueError, match=f"{name} v{old.version} records no training or holdout"):
        promote(agent="meta_strategy", version=str(old.version), db=db)


def test_the_nightly_and_the_gate_log_the_second_opinion(prefect_harness, mlflow_store, tmp_path):
    """On a planted history (per-agent propensities logged), beside the simulated value."""
    from rlv2.demo import build_planted_database
    from rlv2.flows.nightly import nightly_retrain
    from rlv2.flows.promote import judge_candidate
    from rlv2.planted import PlantedConfig

    path = tmp_path / "planted.duckdb"
    build_planted_database(path, PlantedConfig(max_decisions_per_symbol=600))
    out = nightly_retrain(db=str(path), config=config(1), promote=False)
    run = MlflowClient().get_run(out["run_id"])
    train_config = config(1)
    with store.connect(path, read_only=True) as con:
        split = out["split"]
        holdout = pipeline.load_window(con, split["holdout_start"], split["holdout_end"])
    assert set(out["ips"]) == {"meta_strategy", "position_sizing"}
    for agent, version in out["versions"].items():
        opinion = out["ips"][agent]
        assert opinion["ips.n"] == holdout.n_trades and opinion["ips.matched"] > 0
        assert run.data.metrics[f"ips.{agent}.snips"] == opinion["ips.snips"]
        assert run.data.metrics[f"ips.{agent}.se"] == opinion["ips.se"]
        assert run.data.metrics[f"ips.{agent}.simulated"] == opinion["ips.simulated"]
        assert run.data.tags[f"ips_disagrees.{agent}"] == str(opinion["ips_disagrees"])
        q = q_of(agent, version)
        figures = judge_candidate.fn(agent, q, holdout, train_config, (None, None), None)
        assert figures["ips.metric"] == agent_spec(agent).reward_metric
        assert isinstance(figures["ips_disagrees"], bool)
        # the gate's holdout is the nightly's, and the other agent plays nothing else: the
        # decision's second opinion is the nightly's
        assert {k: v for k, v in figures.items() if k.startswith("ips")} == opinion
        # an alarm, never a reason: the decision is the gate's alone
        decision, _, _ = pipeline.promotion_gate(
            agent, holdout, train_config, q, None, None, "logged"
        )
        assert {k: figures[k] for k in decision.as_dict()} == decision.as_dict()


def test_flow_fails_clearly_without_a_database(prefect_harness, mlflow_store, tmp_path):
    from rlv2.flows.nightly import nightly_retrain

    with pytest.raises(FileNotFoundError, match="not found"):
        nightly_retrain(db=str(tmp_path / "missing.duckdb"), config=config(1))


def test_sweep_on_a_dask_cluster_gives_the_threads_result(prefect_harness, mlflow_store, db):
    from rlv2.flows.sweep import sweep

    kwargs = {
        "db": db,
        "agent": "position_sizing",
        "config": config(2),
        "search": SweepConfig(alpha=(0.05, 0.2), gamma=(0.9,), epsilon=(0.2,)),
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
    search = SweepConfig(method="tpe", trials=2, study="resume", storage=storage)
    kwargs = {
        "db": db,
        "agent": "position_sizing",
        "config": config(2),
        "search": search,
        "register_best": False,
    }
    first = sweep(**kwargs)["position_sizing"]["table"]
    assert len(first) == 2
    second = sweep(**kwargs)["position_sizing"]["table"]
    assert sorted(second["trial"]) == [2, 3]
    study = optuna.load_study(study_name="resume-position_sizing", storage=storage)
    assert len(study.trials) == 4  # the rerun added two trials to the stored two
    params = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(params)) == 4  # and proposed none of the first run's configurations
    assert {t.params["meta_weights"] for t in study.trials} == {"0.5,0.2,0.15"}


def test_only_transient_io_errors_are_transient():
    import duckdb
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, TEMPORARILY_UNAVAILABLE

    from rlv2.flows.common import is_transient

    assert is_transient(ConnectionError("reset by peer"))
    assert is_transient(TimeoutError())
    assert is_transient(duckdb.IOException("Could not set lock on file"))
    assert is_transient(MlflowException("database is locked", error_code=TEMPORARILY_UNAVAILABLE))
    try:
        try:
            raise ConnectionError("refused")
        except ConnectionError as cause:
            raise MlflowException("API request failed") from cause
    except MlflowException as wrapped:
        assert is_transient(wrapped)  # through the exception it was raised from
    assert not is_transient(ValueError("db: 0 decision points in table signals"))
    assert not is_transient(FileNotFoundError("missing.duckdb"))
    assert not is_transient(MlflowException("bad param", error_code=INVALID_PARAMETER_VALUE))
    for full in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):  # seconds do not empty a disk
        assert not is_transient(OSError(full, os.strerror(full)))


def test_a_value_error_is_not_retried_and_a_transient_error_is(prefect_harness):
    from prefect import flow, task

    from rlv2.flows.common import IO_RETRIES

    attempts: list[str] = []

    @task(**{**IO_RETRIES, "retry_delay_seconds": 0})
    def read(error: Exception | None, failures: int) -> str:
        attempts.append(type(error).__name__)
        if error is not None and len(attempts) <= failures:
            raise error
        return "read"

    @flow
    def reading(error: Exception | None, failures: int) -> str:
        return read(error, failures)

    with pytest.raises(ValueError, match="no decision points"):
        reading(ValueError("no decision points"), 3)
    assert attempts == ["ValueError"]  # deterministic: not retried
    attempts.clear()
    assert reading(ConnectionError("reset"), 2) == "read"
    assert attempts == ["ConnectionError"] * 3  # transient: retried twice, then it passed
    attempts.clear()
    with pytest.raises(TimeoutError):
        reading(TimeoutError("slow"), 5)
    assert len(attempts) == 3  # two retries, no more


def test_only_idempotent_or_read_only_tasks_are_retried():
    from rlv2.flows import common, nightly, promote, sweep

    retried = [common.plan_split, common.plan_validation, common.load_window]
    retried += [common.load_production, promote.load_candidate, promote.plan_holdout]
    retried += [nightly.log_training, sweep.log_sweep]  # MLflow writes resumed by run key
    for t in retried:
        assert t.retries == 2 and t.retry_condition_fn is common.retry_transient, t.name
    once = [common.train_agent, nightly.evaluate_holdout, sweep.train_group, sweep.score]
    once += [nightly.second_opinions]
    once += [promote.judge_candidate, promote.record_decision]
    for t in once:
        assert not t.retries, t.name


def test_a_retried_log_task_completes_its_own_run(prefect_harness, mlflow_store, db, monkeypatch):
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE

    from rlv2.flows.nightly import nightly_retrain

    register = mlflow.register_model
    calls: list[str] = []

    def register_after_a_lock(model_uri, name, **kwargs):
        calls.append(name)
        if len(calls) == 1:  # the first agent's model is logged, its registration fails
            raise MlflowException("database is locked", error_code=TEMPORARILY_UNAVAILABLE)
        return register(model_uri, name, **kwargs)

    monkeypatch.setattr(mlflow, "register_model", register_after_a_lock)
    # SPEC A4's learner: a new seed gives new tables (the full-information tables are
    # the same for any seed, and an identical table is never registered twice)
    out = nightly_retrain(
        db=db, config=config(1, "q-learning", seed=11), promote=False, figures=False
    )
    assert len(calls) == 3  # one failed, then both agents
    client = MlflowClient()
    run = client.get_run(out["run_id"])
    key = run.data.tags["run_key"]
    assert key.endswith("/log_training") and run.info.status == "FINISHED"
    same_key = client.search_runs([run.info.experiment_id], filter_string=f"tags.run_key = '{key}'")
    assert [r.info.run_id for r in same_key] == [out["run_id"]]  # no second run
    episodes = int(float(run.data.params["train_trades"]))  # one epoch
    for agent in ("meta_strategy", "position_sizing"):
        history = client.get_metric_history(out["run_id"], f"{agent}.episode_reward")
        assert len(history) == min(episodes, pipeline.CURVE_POINTS)  # logged once
        assert len(client.get_metric_history(out["run_id"], f"{agent}.final_epsilon")) == 1
    models = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{out['run_id']}'",
        output_format="list",
    )
    assert len(models) == 2  # the retry registered the model its first try logged
    for agent, version in out["versions"].items():
        digest = client.get_model_version(agent_spec(agent).model_name, version).tags["q_sha256"]
        found = client.search_model_versions(f"tags.q_sha256 = '{digest}'")
        assert len(found) == 1
